// A partner's backlog import through the pacer (../pacer.js), against an upload endpoint
// shaped like Permanent's presign + S3 post: POST /presign (the gate answers: 429 / 503 with
// its headers, or a lease), then POST /store. tests/clients/test_pacers_live.py and
// bench/pacer.py run it against their endpoint in front of a real sidecar:
//   node clients/node/examples/pacer-import.js URL CLIENT_ID COUNT
// Prints one JSON line: the items done, failed and cancelled, the last progress event, and
// the seconds the import took.
import { Pacer } from '../pacer.js';

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
const started = performance.now();
const result = await pacer.run(Array.from({ length: Number(count) }, (_, i) => i));
console.log(JSON.stringify({
  seconds: (performance.now() - started) / 1000,
  done: result.done.map((d) => d.item),
  failed: result.failed,
  cancelled: result.cancelled,
  progress: result.progress,
}));
