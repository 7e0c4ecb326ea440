// Compiled by `npx tsc --noEmit -p .` only (never run): how a partner wraps the Permanent SDK's
// upload with the pacer, and what the declarations refuse.
import { Pacer, type Progress } from '../pacer.js';

interface LocalFile {
  path: string;
  sizeBytes: number;
}

declare function postToS3(post: unknown, file: LocalFile, signal: AbortSignal): Promise<void>;

const pacer = new Pacer<LocalFile, string>({
  maxConcurrency: 8,
  upload: async (file, { signal, admitted }) => {
    const presign = await fetch('https://api.permanent.org/api/record/getPresignedUrl', {
      method: 'POST',
      body: JSON.stringify({ size: file.sizeBytes }),
      signal,
    });
    if (!presign.ok) return presign;
    admitted(presign.headers);
    await postToS3(await presign.json(), file, signal);
    return file.path;
  },
  onProgress: (progress: Progress) => {
    const left: number | null = progress.etaSeconds;
    console.log(`${progress.done} done, ${left ?? '?'} s left, paused for ${progress.heldForSeconds} s`);
  },
});

async function importAll(files: LocalFile[]): Promise<string[]> {
  const result = await pacer.run(files);
  const failed: string[] = result.failed.map(({ item, reason }) => `${item.path}: ${reason}`);
  return [...result.done.map(({ value }) => value), ...failed];
}
void importAll;

// @ts-expect-error: upload is required
new Pacer({ maxConcurrency: 4 });
// @ts-expect-error: a setting is a number
new Pacer({ upload: async () => 'ok', initialConcurrency: 'two' });
