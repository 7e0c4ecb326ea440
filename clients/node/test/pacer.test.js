// The SDK pacer (pacer.js, docs/sdk-pacing.md): its decisions on a fake clock, and the driver
// around fake upload functions. No sidecar needed (tests/clients/test_pacers_live.py has one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer, PacerCore, parseQuotaItems, retryAfterSeconds } from '../pacer.js';

const room = (remaining, quota = 1000) => ({
  'RateLimit-Policy': `"inflight";q=${quota};qu="concurrent-requests"`,
  RateLimit: `"inflight";r=${remaining}`,
});

function startAll(core, now) {
  const started = [];
  let entry;
  while ((entry = core.nextStart(now)) !== null) started.push(entry);
  return started;
}

test('the gate fields read back as the gate writes them', () => {
  assert.deepEqual(parseQuotaItems('"rpm";q=60;w=60, "inflight";q=3;qu="concurrent-requests"'), {
    rpm: { q: 60, w: 60 },
    inflight: { q: 3, qu: 'concurrent-requests' },
  });
  assert.deepEqual(parseQuotaItems('"rpm";r=0;t=2, bogus, "inflight";r=1'), { rpm: { r: 0, t: 2 }, inflight: { r: 1 } });
  assert.deepEqual(parseQuotaItems(null), {});
  assert.equal(retryAfterSeconds('7'), 7);
  assert.equal(retryAfterSeconds('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT')), 10);
  assert.equal(retryAfterSeconds('soon'), null);
});

test('the pacer starts small and grows while admitted, never above maxConcurrency', () => {
  const core = new PacerCore(Array.from({ length: 50 }, (_, i) => i), { initialConcurrency: 2, maxConcurrency: 6 });
  const first = startAll(core, 0);
  assert.equal(first.length, 2);
  for (const entry of first) core.admitted(entry, 0.1, room(100));
  assert.equal(startAll(core, 0.1).length, 2);
  for (const entry of [...core.inFlight.values()]) core.succeeded(entry, 0.2, room(100));
  assert.equal(core.limit, 6);
  assert.equal(startAll(core, 0.2).length, 6);
});

test('concurrency shrinks to what RateLimit says remains, counted against the admitted uploads', () => {
  const core = new PacerCore(Array.from({ length: 50 }, (_, i) => i), { initialConcurrency: 4 });
  const [first] = startAll(core, 0);
  core.admitted(first, 0.1, room(2)); // the 3 others still wait for their answer and take that room
  assert.equal(core.limit, 3);
  assert.equal(core.nextStart(0.1), null);
});

test('an ended upload still counted does not lift the pacer above the one server quota', () => {
  const core = new PacerCore(Array.from({ length: 50 }, (_, i) => i), { initialConcurrency: 4 });
  const started = startAll(core, 0);
  started.forEach((entry, i) => core.admitted(entry, 0.1, room(3 - i, 4)));
  core.succeeded(started[0], 0.2);
  const fifth = core.nextStart(0.2);
  core.admitted(fifth, 0.3, room(1, 4)); // started[1] ended at the server, its answer on the way
  assert.equal(core.limit, 4);
  assert.equal(core.nextStart(0.3), null);
});

test('uploads that ended together never lift the pacer above the one server quota', () => {
  const core = new PacerCore(Array.from({ length: 50 }, (_, i) => i), { initialConcurrency: 4 });
  const first = startAll(core, 0);
  first.forEach((entry, i) => core.admitted(entry, 0.01, room(3 - i, 4)));
  // All four end together at the server. The pacer learns of one end at a time; each next
  // upload's presign answer is counted by a server that has already released all four.
  let now = 1;
  first.forEach((ended, i) => {
    core.succeeded(ended, now);
    const [following] = startAll(core, now);
    core.admitted(following, now + 0.002, room(3 - i, 4));
    assert.ok(core.limit <= 4 && core.inFlight.size <= 4);
    now += 0.003;
  });
});

test('uploads spread over several servers are held to one server quota only until the spread lasts', () => {
  const core = new PacerCore(Array.from({ length: 50 }, (_, i) => i), { initialConcurrency: 8 });
  const started = startAll(core, 0);
  for (const entry of started) core.admitted(entry, 0.1, room(2, 4)); // two servers of quota 4 each
  assert.equal(core.limit, 4); // so far it could be answers on their way from one server
  for (const entry of started.slice(0, 5)) core.succeeded(entry, 1.15);
  const [following] = startAll(core, 1.15);
  core.admitted(following, 1.2, room(2, 4)); // the gap has lasted over a second
  assert.equal(core.limit, 5); // above one server's quota, and growing
  assert.equal(startAll(core, 1.2).length, 1);
});

test('an answer that says the server is full never raises the concurrency', () => {
  const core = new PacerCore(Array.from({ length: 50 }, (_, i) => i), { initialConcurrency: 4 });
  const started = startAll(core, 0);
  core.admitted(started[0], 0.1, room(0)); // full: another importer of the partner holds the rest
  assert.equal(core.limit, 1);
  for (const entry of started.slice(1)) {
    core.admitted(entry, 0.2, room(0));
    assert.equal(core.limit, 1);
  }
  for (const entry of started) core.succeeded(entry, 0.3);
  core.admitted(core.nextStart(0.3), 0.4, room(2)); // room again: it grows
  assert.equal(core.limit, 2);
});

test('a 429 makes only the rejected item wait its Retry-After', () => {
  const core = new PacerCore(['a', 'b', 'c', 'd'], { initialConcurrency: 2 });
  const [a, b] = startAll(core, 0);
  core.admitted(b, 0.5, room(2));
  core.rejected(a, 1, 429, { 'Retry-After': '5', RateLimit: '"inflight";r=1' });
  assert.deepEqual(startAll(core, 1).map((e) => e.item), ['c']);
  core.succeeded(b, 2);
  assert.deepEqual(startAll(core, 2).map((e) => e.item), ['d']);
  core.succeeded(core.inFlight.get(2), 5.9);
  assert.equal(core.nextStart(5.9), null);
  assert.equal(core.nextStart(6).item, 'a');
  assert.equal(core.progress(6).throttled, 1);
});

test('a pause 503 holds everything until its Retry-After; a reduced-capacity 503 does not', () => {
  const core = new PacerCore(Array.from({ length: 10 }, (_, i) => i), { initialConcurrency: 3 });
  const [first, second] = startAll(core, 0);
  core.rejected(first, 1, 503, { 'Retry-After': '30' });
  core.succeeded(second, 2);
  assert.equal(core.nextStart(2), null);
  assert.equal(core.wakeAt(2), 31);
  assert.equal(core.progress(2).heldForSeconds, 29);
  assert.equal(core.nextStart(31).item, 0);

  const reduced = new PacerCore(Array.from({ length: 10 }, (_, i) => i), { initialConcurrency: 3 });
  const [one] = startAll(reduced, 0);
  reduced.rejected(one, 1, 503, { 'Retry-After': '5', RateLimit: '"inflight";r=3' });
  assert.equal(reduced.holdUntil, 0);
});

test('an exhausted rate spaces the next starts by one interval', () => {
  const core = new PacerCore(Array.from({ length: 10 }, (_, i) => i), { initialConcurrency: 4 });
  const entry = core.nextStart(0);
  core.admitted(entry, 0, { 'RateLimit-Policy': '"rpm";q=120;w=60', RateLimit: '"rpm";r=0;t=1' });
  assert.equal(core.nextStart(0.4), null);
  assert.equal(core.wakeAt(0.4), 0.5);
  assert.notEqual(core.nextStart(0.5), null);
});

test('timeouts are retried with jittered backoff, halve the concurrency, and fail after maxAttempts', () => {
  const core = new PacerCore(['a', 1, 2, 3], { initialConcurrency: 4, maxAttempts: 3 }, () => 1);
  const [a] = startAll(core, 0);
  assert.equal(core.transientError(a, 10), true);
  assert.equal(core.limit, 2);
  assert.equal(a.notBefore, 11);
  const lone = new PacerCore(['a'], { maxAttempts: 3 }, () => 0);
  let retried;
  for (let attempt = 0; attempt < 3; attempt += 1) retried = lone.transientError(lone.nextStart(100 * attempt), 100 * attempt);
  assert.equal(retried, false);
  assert.ok(lone.finished);
  assert.match(lone.failed[0].reason, /3 attempts in a row/);
});

test('the estimate is items left over the recent rate, plus the pause still to wait', () => {
  const core = new PacerCore(Array.from({ length: 12 }, (_, i) => i), { initialConcurrency: 2, maxConcurrency: 2 });
  assert.equal(core.progress(0).etaSeconds, null);
  for (const second of [1, 2]) for (const entry of startAll(core, second)) core.succeeded(entry, second);
  assert.ok(Math.abs(core.progress(2).etaSeconds - 8 / 3) < 1e-9);
  core.rejected(core.nextStart(2), 2, 503, { 'Retry-After': '10' });
  assert.ok(Math.abs(core.progress(2).etaSeconds - (10 + 8 / 3)) < 1e-9);
});

/** An upload endpoint with room for `capacity` uploads at once, answering like fetch would. */
function fakeServer(capacity) {
  const server = { inFlight: 0, maxSeen: 0, stored: [], gate: null };
  server.upload = async (item, { admitted }) => {
    if (server.inFlight >= capacity) {
      return { status: 429, headers: new Headers({ 'Retry-After': '0', RateLimit: '"inflight";r=0' }) };
    }
    server.inFlight += 1;
    server.maxSeen = Math.max(server.maxSeen, server.inFlight);
    admitted(new Headers({ RateLimit: `"inflight";r=${capacity - server.inFlight}` }));
    await (server.gate ?? new Promise((resolve) => setTimeout(resolve, 2)));
    server.inFlight -= 1;
    server.stored.push(item);
    return `stored ${item}`;
  };
  return server;
}

test('every item is uploaded once, within the room the server says it has', async () => {
  const server = fakeServer(3);
  const progress = [];
  const pacer = new Pacer({ upload: server.upload, maxConcurrency: 8, onProgress: (p) => progress.push(p) });
  const result = await pacer.run(Array.from({ length: 60 }, (_, i) => i));
  assert.deepEqual([...server.stored].sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i));
  assert.equal(result.done.length, 60);
  assert.equal(server.maxSeen, 3); // it grew to the room the server has
  assert.deepEqual(result.done.find((d) => d.item === 0), { item: 0, value: 'stored 0' });
  assert.ok(result.progress.throttled <= 3, JSON.stringify(result.progress)); // RateLimit kept it within the room
  assert.equal(progress.at(-1).done, 60);
  assert.ok(Math.max(...progress.map((p) => p.concurrency)) <= 8);
  assert.equal(result.progress.etaSeconds, 0);
});

test('network errors are retried, a 4xx is not, thrown HTTP errors are read like answers', async () => {
  let flaky = 0;
  const upload = async (item) => {
    if (item === 'flaky' && flaky < 2) {
      flaky += 1;
      throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
    }
    if (item === 'forbidden') throw Object.assign(new Error('Forbidden'), { response: { status: 403, headers: {} } });
    if (item === 'bug') throw new RangeError('a bug in the caller');
    return item;
  };
  const result = await new Pacer({ upload, backoffBaseSeconds: 0.001 }).run(['flaky', 'forbidden', 'bug', 'fine']);
  assert.deepEqual(result.done.map((d) => d.item).sort(), ['fine', 'flaky']);
  assert.deepEqual(result.failed, [
    { item: 'forbidden', reason: 'HTTP 403' },
    { item: 'bug', reason: 'RangeError: a bug in the caller' },
  ]);
  assert.equal(result.progress.retries, 2);
});

test('cancelling reports the items not started and lets those in flight end', async () => {
  const server = fakeServer(100);
  let open;
  server.gate = new Promise((resolve) => (open = resolve));
  const controller = new AbortController();
  const pacer = new Pacer({ upload: server.upload, initialConcurrency: 2, maxConcurrency: 2, signal: controller.signal });
  const running = pacer.run(Array.from({ length: 10 }, (_, i) => i));
  while (server.inFlight < 2) await new Promise((resolve) => setTimeout(resolve, 1));
  controller.abort();
  assert.ok(pacer.signal.aborted); // what the uploads in flight were given
  open();
  const result = await running;
  assert.deepEqual([...server.stored].sort(), [0, 1]);
  assert.equal(result.done.length, 2);
  assert.deepEqual(result.cancelled, [2, 3, 4, 5, 6, 7, 8, 9]);
});
