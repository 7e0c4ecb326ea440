// The client and the middleware on their own: answers the sidecar should never give, a sidecar
// that does not answer, bad input. No sidecar needed (test/sidecar.test.js has the real one).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { presignGate, problemOf, UploadGateBadRequest, UploadGateClient } from '../index.js';

function quietClient(options) {
  const lines = [];
  const client = new UploadGateClient({ log: (line) => lines.push(line), ...options });
  return { client, lines };
}

/** A 127.0.0.1 HTTP server answering every request with handler(req, res); resolves to its port. */
async function fakeSidecar(t, handler) {
  const server = http.createServer(handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return server.address().port;
}

test('a sidecar answering 500 counts as away: fail-open, counted and logged', async (t) => {
  const port = await fakeSidecar(t, (req, res) => {
    res.statusCode = 500;
    res.end('{"error": "boom"}');
  });
  const { client, lines } = quietClient({ port });
  t.after(() => client.close());
  const decision = await client.admit('theirstory', 10);
  assert.equal(decision.admitted, true);
  assert.equal(decision.source, 'fail-open');
  assert.equal(decision.lease_id, null);
  assert.match(decision.error, /HTTP 500/);
  assert.deepEqual(decision.headers, {});
  assert.equal(client.stats.failOpen, 1);
  assert.equal(lines.length, 1);
});

test('an answer that is not a decision counts as away: fail-closed answers 503 with its Retry-After', async (t) => {
  const port = await fakeSidecar(t, (req, res) => res.end('<html>not the sidecar</html>'));
  const { client } = quietClient({ port, failMode: 'closed', failClosedRetryAfterSeconds: 9 });
  t.after(() => client.close());
  const decision = await client.admit('theirstory', 10);
  assert.equal(decision.admitted, false);
  assert.equal(decision.status, 503);
  assert.equal(decision.source, 'fail-closed');
  assert.deepEqual(decision.headers, { 'Retry-After': '9' });
  assert.equal(client.stats.failClosed, 1);
  assert.equal(problemOf(decision).title, 'Service Unavailable');
});

test('failures are logged once, then at most once per logEverySeconds, with a count', async () => {
  const { client, lines } = quietClient({ socketPath: '/nonexistent/gate.sock' });
  for (let i = 0; i < 3; i += 1) await client.admit('theirstory', 1);
  assert.equal(lines.length, 1);
  assert.equal(client.stats.failOpen, 3);
  const { client: chatty, lines: every } = quietClient({ socketPath: '/nonexistent/gate.sock', logEverySeconds: 0 });
  for (let i = 0; i < 3; i += 1) await chatty.admit('theirstory', 1);
  assert.equal(every.length, 3);
});

test('a sidecar that accepts but never answers is given up after the timeout', async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'gate-mute-'));
  const socketPath = join(folder, 'gate.sock');
  const held = [];
  const mute = net.createServer((socket) => held.push(socket));
  await new Promise((resolve) => mute.listen(socketPath, resolve));
  t.after(() => {
    held.forEach((socket) => socket.destroy());
    mute.close();
    rmSync(folder, { recursive: true, force: true });
  });
  const { client } = quietClient({ socketPath, timeoutMs: 100 });
  t.after(() => client.close());
  // Without the deadline this would wait for ever (node --test's own timeout catches that).
  const decision = await client.admit('theirstory', 10);
  assert.equal(decision.source, 'fail-open');
  assert.match(decision.error, /ETIMEDOUT/);
});

test('a 400 from the sidecar is the caller\'s mistake: it throws, it does not fail open', async (t) => {
  const port = await fakeSidecar(t, (req, res) => {
    res.statusCode = 400;
    res.end('{"error": "lease_id is not a lease id this sidecar hands out", "field": "lease_id"}');
  });
  const { client } = quietClient({ port });
  t.after(() => client.close());
  await assert.rejects(client.release('nonsense', 'completed'), (error) => error instanceof UploadGateBadRequest && error.field === 'lease_id');
  await assert.rejects(client.admit('theirstory', -1), { name: 'UploadGateBadRequest', field: 'size_bytes' });
  await assert.rejects(client.admit('', 1), { field: 'client_id' });
  await assert.rejects(client.release('x', 'done'), { field: 'outcome' });
  assert.equal(client.stats.failOpen, 0);
});

test('release and renew without a lease make no call', async () => {
  const { client } = quietClient({ socketPath: '/nonexistent/gate.sock' });
  assert.deepEqual(await client.release(null), { released: false, source: null });
  assert.deepEqual(await client.renew(undefined), { renewed: false, expires_in_seconds: null, source: null });
  assert.equal(client.stats.requests, 0);
});

test('options are checked when the client is made', () => {
  assert.throws(() => new UploadGateClient({ failMode: 'sometimes' }), TypeError);
  assert.throws(() => new UploadGateClient({ port: 70000 }), TypeError);
  assert.equal(new UploadGateClient().address, 'unix:/run/upload-gate/gate.sock');
  assert.equal(new UploadGateClient({ port: 8112 }).address, 'http://127.0.0.1:8112');
});

// -- presignGate with a stand-in client ----------------------------------------------------
function recordingResponse() {
  const headers = {};
  return {
    statusCode: 200,
    headers,
    body: null,
    setHeader(name, value) {
      headers[name.toLowerCase()] = value;
    },
    end(text) {
      this.body = text === undefined ? null : JSON.parse(text);
    },
  };
}

async function runMiddleware(decisionOrError, req = { auth: { clientId: 'theirstory' }, body: { size: '2048' } }) {
  const calls = [];
  const client = {
    async admit(clientId, sizeBytes) {
      calls.push([clientId, sizeBytes]);
      if (decisionOrError instanceof Error) throw decisionOrError;
      return decisionOrError;
    },
  };
  const middleware = presignGate({ client, clientId: (r) => r.auth.clientId, sizeBytes: (r) => r.body.size });
  const res = recordingResponse();
  let nextCalls = 0;
  await middleware(req, res, () => {
    nextCalls += 1;
  });
  return { res, calls, nextCalls };
}

const throttled = {
  admitted: false,
  status: 429,
  reason: 'too many uploads in progress',
  limit: 'max_concurrent_uploads',
  retry_after_seconds: 5,
  lease_id: null,
  lease_expires_in_seconds: null,
  headers: { 'RateLimit-Policy': '"inflight";q=2;qu="concurrent-requests"', RateLimit: '"inflight";r=0', 'Retry-After': '5' },
  problem: null,
  source: 'sidecar',
};

test('presignGate answers a rejection itself: its status, the gate\'s headers, a problem+json body', async () => {
  const { res, calls, nextCalls } = await runMiddleware(throttled);
  assert.deepEqual(calls, [['theirstory', 2048]]);
  assert.equal(nextCalls, 0);
  assert.equal(res.statusCode, 429);
  assert.equal(res.headers['retry-after'], '5');
  assert.equal(res.headers.ratelimit, '"inflight";r=0');
  assert.equal(res.headers['content-type'], 'application/problem+json');
  assert.equal(res.body.status, 429);
  assert.equal(res.body.detail, 'too many uploads in progress');
  assert.equal(res.body.limit, 'max_concurrent_uploads');
});

test('presignGate keeps the sidecar\'s problem members (reduced capacity) in the body', async () => {
  const problem = { type: 'https://iana.org/assignments/http-problem-types#temporary-reduced-capacity', title: 'Temporary Reduced Capacity', 'violated-policies': ['inflight'] };
  const { res } = await runMiddleware({ ...throttled, status: 503, problem });
  assert.equal(res.statusCode, 503);
  assert.equal(res.body.type, problem.type);
  assert.deepEqual(res.body['violated-policies'], ['inflight']);
});

test('presignGate hands an admitted upload\'s lease to the route and calls next()', async () => {
  const admitted = { ...throttled, admitted: true, status: 200, reason: '', limit: null, retry_after_seconds: null, lease_id: 'abcd0123-7', lease_expires_in_seconds: 900, headers: { RateLimit: '"inflight";r=1' } };
  const req = { auth: { clientId: 'theirstory' }, body: { size: 10 } };
  const res = recordingResponse();
  res.locals = { user: 'kept' };
  let nextCalls = 0;
  await presignGate({ client: { admit: async () => admitted }, clientId: (r) => r.auth.clientId, sizeBytes: (r) => r.body.size })(req, res, () => {
    nextCalls += 1;
  });
  assert.equal(nextCalls, 1);
  assert.equal(res.locals.user, 'kept');
  assert.deepEqual({ ...res.locals.uploadLease, decision: undefined }, { leaseId: 'abcd0123-7', expiresInSeconds: 900, source: 'sidecar', decision: undefined });
  assert.equal(res.headers.ratelimit, '"inflight";r=1');
  assert.equal(res.headers['x-upload-gate-source'], 'sidecar');
});

test('presignGate answers 400 for a size that is not a byte count, and passes other errors to next()', async () => {
  const bad = await runMiddleware(new UploadGateBadRequest('size_bytes must be a whole number of bytes, 0 or more', 'size_bytes'));
  assert.equal(bad.res.statusCode, 400);
  assert.equal(bad.res.body.field, 'size');
  const broken = new Error('auth store down');
  const client = { admit: async () => { throw broken; } };
  let passed = null;
  await presignGate({ client, clientId: () => 'x', sizeBytes: () => 1 })({}, recordingResponse(), (error) => {
    passed = error;
  });
  assert.equal(passed, broken);
});
