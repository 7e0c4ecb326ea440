// A partner's backlog import through the pacer (../pacer.js), against an upload endpoint
// shaped like Permanent's presign + S3 post: POST /presign (the gate answers: 429 / 503 with
// its headers, or a lease), then POST /store. tests/clients/test_pacers_live.py and
// bench/pacer.py run it against their endpoint in front of a real sidecar:
//   node clients/node/examples/pacer-import.js URL CLIENT_ID COUNT
// Prints one JSON line: the items done, failed and cancelled, the last progress event, and
// the seconds the import took.
import http from 'node:http';

import { Pacer } from '../pacer.js';

const [url, clientId, count] = process.argv.slice(2);
// Kept-alive connections, as an SDK keeps them. node:http rather than fetch: fetch costs
// several milliseconds a request on a small busy machine, which would count against the pacer.
const agent = new http.Agent({ keepAlive: true });

/** POST a JSON body; resolves to {status, headers, ok, json()}: what the pacer and this import read. */
function post(path, body) {
  const data = JSON.stringify(body);
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), 'X-Client-Id': clientId };
  return new Promise((resolve, reject) => {
    const request = http.request(`${url}${path}`, { method: 'POST', agent, headers }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        const { statusCode: status, headers: answerHeaders } = response;
        resolve({ status, headers: answerHeaders, ok: status < 300, json: async () => JSON.parse(text) });
      });
    });
    request.on('error', reject);
    request.end(data);
  });
}

const pacer = new Pacer({
  maxConcurrency: 16,
  upload: async (item, { admitted }) => {
    const presign = await post('/presign', { item, size_bytes: 1000 });
    if (!presign.ok) return presign; // 429 / 503: the pacer reads its status and headers
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
agent.destroy();
