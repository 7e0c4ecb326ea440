// admit + release pairs through the Node client, timed one by one; prints one JSON line.
//
//   node clients/node/bench/pairs.js SOCKET PAIRS [CONCURRENCY]
//
// CONCURRENCY calls in flight at once from this one process (1: one after the other).
import { UploadGateClient } from '../index.js';

const [socketPath, pairsText = '1000', concurrencyText = '1'] = process.argv.slice(2);
const pairs = Number(pairsText);
const warmUpPairs = Math.min(500, pairs);
const concurrency = Number(concurrencyText);
const gate = new UploadGateClient({ socketPath, timeoutMs: 5000 });
const microseconds = [];
let notAdmittedBySidecar = 0;
let next = 0;
let limit = warmUpPairs;

async function worker() {
  while (next < limit) {
    const i = next++;
    const started = process.hrtime.bigint();
    const decision = await gate.admit(`bench-node-${i % 100}`, 1048576);
    await gate.release(decision.lease_id, 'completed');
    microseconds.push(Number(process.hrtime.bigint() - started) / 1000);
    if (decision.source !== 'sidecar' || !decision.admitted) notAdmittedBySidecar += 1;
  }
}

// Warm up (JIT, the connections), then time.
await Promise.all(Array.from({ length: concurrency }, worker));
microseconds.length = 0;
notAdmittedBySidecar = 0;
next = 0;
limit = pairs;
const started = process.hrtime.bigint();
await Promise.all(Array.from({ length: concurrency }, worker));
const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
gate.close();
console.log(JSON.stringify({ microseconds, wall_seconds: wallSeconds, not_admitted_by_sidecar: notAdmittedBySidecar, connections_opened: gate.stats.connectionsOpened }));
