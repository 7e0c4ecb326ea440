// The client, the middleware and the example upload-service against a real sidecar
// (tests/clients/test_node_client.py starts it):
//
//   UPLOAD_GATE_SOCKET=/tmp/gate-x/gate.sock UPLOAD_GATE_SIDECAR=running node --test test/
//
// running: the sidecar serves `*` with 2 uploads at once and a paused client
// (UPLOAD_GATE_PAUSED_CLIENT, UPLOAD_GATE_PAUSE_REASON); stopped: it was stopped, nothing
// answers on the socket. Without UPLOAD_GATE_SOCKET these tests are skipped.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { UploadGateBadRequest, UploadGateClient } from '../index.js';
import { createUploadService } from '../examples/upload-service.js';

const socketPath = process.env.UPLOAD_GATE_SOCKET;
const state = process.env.UPLOAD_GATE_SIDECAR;
const skipUnless = (wanted) => (socketPath && state === wanted ? false : `needs UPLOAD_GATE_SOCKET and UPLOAD_GATE_SIDECAR=${wanted}`);

const freshClientId = () => `node-test-${randomBytes(4).toString('hex')}`;

function client(t, options = {}) {
  const lines = [];
  // A generous deadline: the test machine may be busy; test/client.test.js covers timing out.
  const made = new UploadGateClient({ socketPath, timeoutMs: 5000, log: (line) => lines.push(line), ...options });
  t.after(() => made.close());
  made.lines = lines;
  return made;
}

/** The example upload-service on a free port; post(path, body, token) resolves to {status, headers, body}. */
async function uploadService(t, gateClient) {
  const server = createUploadService({ client: gateClient });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const { port } = server.address();
  return (path, body, token = 'demo-theirstory-token') =>
    new Promise((resolve, reject) => {
      const request = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' } }, (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode, headers: response.headers, body: JSON.parse(Buffer.concat(chunks).toString()) }));
      });
      request.on('error', reject);
      request.end(JSON.stringify(body));
    });
}

describe('with the sidecar running', { skip: skipUnless('running') }, () => {
  test('an admitted upload gets a lease and the RateLimit headers to copy', async (t) => {
    const decision = await client(t).admit(freshClientId(), 1048576);
    assert.equal(decision.admitted, true);
    assert.equal(decision.status, 200);
    assert.equal(decision.source, 'sidecar');
    assert.match(decision.lease_id, /\S/);
    assert.ok(decision.lease_expires_in_seconds > 0);
    assert.deepEqual(Object.keys(decision.headers), ['RateLimit-Policy', 'RateLimit']);
    assert.match(decision.headers.RateLimit, /"inflight";r=1/);
  });

  test('the third upload beyond concurrency 2 is a 429 with Retry-After and RateLimit', async (t) => {
    const gate = client(t);
    const id = freshClientId();
    const [first, second] = [await gate.admit(id, 10), await gate.admit(id, 10)];
    const third = await gate.admit(id, 10);
    assert.ok(first.admitted && second.admitted);
    assert.equal(third.admitted, false);
    assert.equal(third.status, 429);
    assert.equal(third.limit, 'max_concurrent_uploads');
    assert.equal(third.lease_id, null);
    assert.equal(third.headers['Retry-After'], String(third.retry_after_seconds));
    assert.ok(third.retry_after_seconds >= 1);
    assert.match(third.headers['RateLimit-Policy'], /"inflight";q=2/);
    assert.match(third.headers.RateLimit, /"inflight";r=0/);
  });

  test('releasing a lease frees its slot, once', async (t) => {
    const gate = client(t);
    const id = freshClientId();
    const first = await gate.admit(id, 10);
    await gate.admit(id, 10);
    assert.equal((await gate.admit(id, 10)).status, 429);
    assert.deepEqual(await gate.release(first.lease_id, 'completed'), { released: true, source: 'sidecar' });
    assert.equal((await gate.admit(id, 10)).admitted, true);
    assert.equal((await gate.release(first.lease_id, 'completed')).released, false);
  });

  test('a long upload renews its lease until it ends', async (t) => {
    const gate = client(t);
    const decision = await gate.admit(freshClientId(), 10);
    const renewed = await gate.renew(decision.lease_id);
    assert.equal(renewed.renewed, true);
    assert.ok(renewed.expires_in_seconds > 0);
    await gate.release(decision.lease_id, 'failed');
    assert.equal((await gate.renew(decision.lease_id)).renewed, false);
  });

  test('a paused client gets 503 with the pause reason and Retry-After', async (t) => {
    const decision = await client(t).admit(process.env.UPLOAD_GATE_PAUSED_CLIENT, 10);
    assert.equal(decision.status, 503);
    assert.equal(decision.admitted, false);
    assert.equal(decision.reason, process.env.UPLOAD_GATE_PAUSE_REASON);
    assert.equal(decision.headers['Retry-After'], String(decision.retry_after_seconds));
    assert.equal(decision.source, 'sidecar');
  });

  test('over a limit lowered for the loaded fleet: 503 with the reduced-capacity problem', async (t) => {
    const gate = client(t);
    const id = process.env.UPLOAD_GATE_REDUCED_CLIENT;
    const first = await gate.admit(id, 10);
    const second = await gate.admit(id, 10);
    await gate.release(first.lease_id, 'completed');
    assert.equal(second.status, 503);
    assert.equal(second.source, 'sidecar');
    assert.match(second.problem.type, /#temporary-reduced-capacity$/);
    assert.deepEqual(second.problem['violated-policies'], ['inflight']);
    assert.match(second.headers.RateLimit, /"inflight";r=0/);
  });

  test('calls reuse one kept-alive connection', async (t) => {
    const gate = client(t);
    const id = freshClientId();
    for (let i = 0; i < 5; i += 1) {
      const decision = await gate.admit(id, 1);
      await gate.release(decision.lease_id, 'completed');
    }
    assert.deepEqual(gate.stats, { requests: 10, connectionsOpened: 1, failOpen: 0, failClosed: 0 });
  });

  test('concurrent calls from one process all get answers', async (t) => {
    const gate = client(t);
    const decisions = await Promise.all(Array.from({ length: 40 }, () => gate.admit(freshClientId(), 1)));
    assert.ok(decisions.every((decision) => decision.source === 'sidecar' && decision.admitted));
    await Promise.all(decisions.map((decision) => gate.release(decision.lease_id, 'completed')));
    assert.ok(gate.stats.connectionsOpened <= 16);
  });

  test('the sidecar refuses a malformed lease id: the client throws instead of failing open', async (t) => {
    const gate = client(t);
    await assert.rejects(gate.release('not-a-lease', 'completed'), (error) => error instanceof UploadGateBadRequest && error.field === 'lease_id');
    assert.equal(gate.stats.failOpen, 0);
  });

  test('the example upload-service: 200 with a lease, 429 with the gate\'s headers, release frees a slot', async (t) => {
    const post = await uploadService(t, client(t));
    const upload = { fileName: 'interview.mp4', size: 5242880 };
    const first = await post('/fileDestinationUrl', upload);
    assert.equal(first.status, 200);
    assert.equal(first.body.presignedPost.fields['x-amz-meta-upload-lease'], first.body.uploadLeaseId);
    assert.match(first.headers.ratelimit, /"inflight";r=1/);
    assert.equal((await post('/fileDestinationUrl', upload)).status, 200);
    const third = await post('/fileDestinationUrl', upload);
    assert.equal(third.status, 429);
    assert.equal(third.headers['content-type'], 'application/problem+json');
    assert.equal(third.headers['retry-after'], String(third.body.retry_after_seconds));
    assert.match(third.headers.ratelimit, /"inflight";r=0/);
    assert.ok(third.headers['ratelimit-policy']);
    const done = await post('/uploadComplete', { uploadLeaseId: first.body.uploadLeaseId });
    assert.deepEqual(done.body, { leaseReleased: true, gateSource: 'sidecar' });
    assert.equal((await post('/fileDestinationUrl', upload)).status, 200);
    const paused = await post('/fileDestinationUrl', upload, 'demo-archive-token');
    assert.equal(paused.status, 503);
    assert.equal(paused.body.detail, process.env.UPLOAD_GATE_PAUSE_REASON);
    const badSize = await post('/fileDestinationUrl', { fileName: 'x', size: -1 });
    assert.equal(badSize.status, 400);
    assert.equal(badSize.body.field, 'size');
  });
});

describe('with the sidecar stopped', { skip: skipUnless('stopped') }, () => {
  test('the client fails open by default: admitted without a lease, counted and logged', async (t) => {
    const gate = client(t);
    const decision = await gate.admit(freshClientId(), 10);
    assert.equal(decision.admitted, true);
    assert.equal(decision.status, 200);
    assert.equal(decision.source, 'fail-open');
    assert.equal(decision.lease_id, null);
    assert.deepEqual(decision.headers, {});
    assert.ok(decision.error.includes(`unix:${socketPath}`));
    assert.equal(gate.stats.failOpen, 1);
    assert.equal(gate.lines.length, 1);
    assert.match(gate.lines[0], /fail-open/);
    assert.equal((await gate.release(decision.lease_id)).released, false);
  });

  test('a fail-closed client answers 503 with its Retry-After', async (t) => {
    const gate = client(t, { failMode: 'closed', failClosedRetryAfterSeconds: 7 });
    const decision = await gate.admit(freshClientId(), 10);
    assert.equal(decision.admitted, false);
    assert.equal(decision.status, 503);
    assert.equal(decision.source, 'fail-closed');
    assert.deepEqual(decision.headers, { 'Retry-After': '7' });
    assert.equal(gate.stats.failClosed, 1);
  });

  test('the example upload-service says which: fail-open presigns without a lease, fail-closed answers 503', async (t) => {
    const open = await uploadService(t, client(t));
    const admitted = await open('/fileDestinationUrl', { fileName: 'a.mp4', size: 10 });
    assert.equal(admitted.status, 200);
    assert.equal(admitted.body.uploadLeaseId, null);
    assert.equal(admitted.body.gateSource, 'fail-open');
    assert.equal(admitted.headers['x-upload-gate-source'], 'fail-open');
    const closed = await uploadService(t, client(t, { failMode: 'closed' }));
    const refused = await closed('/fileDestinationUrl', { fileName: 'a.mp4', size: 10 });
    assert.equal(refused.status, 503);
    assert.equal(refused.body.source, 'fail-closed');
    assert.equal(refused.headers['retry-after'], '5');
  });
});
