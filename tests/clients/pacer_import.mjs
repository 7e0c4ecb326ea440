// A partner's import through the JavaScript pacer, against tests/clients' upload endpoint:
//   node tests/clients/pacer_import.mjs URL CLIENT_ID COUNT
// Prints the pacer's result as one JSON line (items done, failed, cancelled, last progress).
import { Pacer } from '../../clients/node/pacer.js';

const [url, clientId, count] = process.argv.slice(2);

async function post(path, body) {
  return fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Client-Id': clientId },
    body: JSON.stringify(body),
  });
}

const pacer = new Pacer({
  maxConcurrency: 16,
  upload: async (item, { admitted }) => {
    const presign = await post('/presign', { item, size_bytes: 1000 });
    if (!presign.ok) {
      await presign.arrayBuffer();
      return presign; // 429 / 503: the pacer reads its status and headers
    }
    admitted(presign.headers);
    const { lease_id: leaseId } = await presign.json();
    const stored = await post('/store', { item, lease_id: leaseId });
    if (!stored.ok) throw Object.assign(new Error('store failed'), { status: stored.status });
    return (await stored.json()).stored;
  },
});
const result = await pacer.run(Array.from({ length: Number(count) }, (_, i) => i));
console.log(JSON.stringify({
  done: result.done.map((d) => d.item),
  failed: result.failed,
  cancelled: result.cancelled,
  progress: result.progress,
}));
