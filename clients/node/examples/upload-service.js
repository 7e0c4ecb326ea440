// An upload-service shaped like Permanent's Node one (Express: POST /fileDestinationUrl),
// gated by the sidecar through presignGate, with the completion callback that ends the lease.
// node:http only, so it runs without Express; with Express the same middleware goes in
// `app.post('/fileDestinationUrl', express.json(), presignGate({...}), handler)`.
//
//   POST /fileDestinationUrl   Authorization: Bearer <token>   {"fileName": "a.mp4", "size": 1048576}
//     200 → a fake presigned POST and "uploadLeaseId"; 429 / 503 → the gate's headers, problem+json
//   POST /uploadComplete       {"uploadLeaseId": "...", "outcome": "completed"|"failed"|"timed_out"}
//
// Try it by hand:
//   UPLOAD_GATE_SOCKET=/run/upload-gate/gate.sock PORT=8112 node clients/node/examples/upload-service.js
//   curl -si -H 'Authorization: Bearer demo-theirstory-token' -d '{"fileName":"a.mp4","size":1048576}' \
//        http://127.0.0.1:8112/fileDestinationUrl

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { presignGate, UploadGateBadRequest, UploadGateClient } from '../index.js';

// Stand-in for the service's auth: access token → the partner's OAuth client id.
const DEMO_TOKENS = new Map([
  ['demo-theirstory-token', 'theirstory'],
  ['demo-archive-token', 'fas-importer'],
]);

function sendJson(res, status, body, contentType = 'application/json') {
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.end(JSON.stringify(body));
}

function problem(res, status, title, detail, extra = {}) {
  sendJson(res, status, { type: 'about:blank', title, status, detail, ...extra }, 'application/problem+json');
}

// What express.json() and an auth middleware would do.
async function readJsonBody(req, res, next) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  try {
    req.body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    problem(res, 400, 'Bad Request', 'the body must be JSON');
    return;
  }
  next();
}

function authenticate(req, res, next) {
  const token = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? '')?.[1];
  if (!DEMO_TOKENS.has(token)) {
    problem(res, 401, 'Unauthorized', 'send a valid access token: Authorization: Bearer <token>');
    return;
  }
  req.auth = { clientId: DEMO_TOKENS.get(token) };
  next();
}

function fileDestinationUrl(req, res) {
  const lease = res.locals.uploadLease;
  const key = `uploads/${randomBytes(8).toString('hex')}/${String(req.body.fileName ?? 'file').replace(/[^\w.-]/g, '_')}`;
  sendJson(res, 200, {
    destinationUrl: `https://permanent-uploads.example/${key}`,
    // Fake presigned POST: the real service signs these with the S3 SDK.
    presignedPost: {
      url: 'https://permanent-uploads.example',
      fields: { key, 'x-amz-meta-upload-lease': lease.leaseId ?? '', 'X-Amz-Signature': 'fake-signature' },
    },
    uploadLeaseId: lease.leaseId,
    leaseExpiresInSeconds: lease.expiresInSeconds,
    gateSource: lease.source,
  });
}

function uploadComplete(client) {
  return async (req, res) => {
    const { uploadLeaseId = null, outcome = 'completed' } = req.body;
    try {
      const release = await client.release(uploadLeaseId, outcome);
      sendJson(res, 200, { leaseReleased: release.released, gateSource: release.source });
    } catch (error) {
      if (!(error instanceof UploadGateBadRequest)) throw error;
      problem(res, 400, 'Bad Request', error.message, { field: error.field === 'lease_id' ? 'uploadLeaseId' : error.field });
    }
  };
}

/** Run handlers in order, Express-style: each calls next() to go on, or answers. */
function chain(...handlers) {
  return (req, res) => {
    res.locals = {};
    const step = (index) => (error) => {
      if (error) {
        problem(res, 500, 'Internal Server Error', 'the upload service failed');
        return;
      }
      Promise.resolve(handlers[index]?.(req, res, step(index + 1))).catch(step(handlers.length));
    };
    step(0)();
  };
}

export function createUploadService({ client }) {
  const routes = {
    'POST /fileDestinationUrl': chain(
      readJsonBody,
      authenticate,
      presignGate({ client, clientId: (req) => req.auth.clientId, sizeBytes: (req) => req.body.size }),
      fileDestinationUrl,
    ),
    'POST /uploadComplete': chain(readJsonBody, authenticate, uploadComplete(client)),
  };
  return http.createServer((req, res) => {
    const route = routes[`${req.method} ${new URL(req.url, 'http://x').pathname}`];
    if (route) route(req, res);
    else problem(res, 404, 'Not Found', 'POST /fileDestinationUrl or /uploadComplete');
  });
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const client = new UploadGateClient({
    socketPath: process.env.UPLOAD_GATE_SOCKET,
    port: process.env.UPLOAD_GATE_PORT ? Number(process.env.UPLOAD_GATE_PORT) : undefined,
    failMode: process.env.UPLOAD_GATE_FAIL_MODE ?? 'open',
    timeoutMs: process.env.UPLOAD_GATE_TIMEOUT_MS ? Number(process.env.UPLOAD_GATE_TIMEOUT_MS) : undefined,
  });
  const port = Number(process.env.PORT ?? 8112);
  createUploadService({ client }).listen(port, '127.0.0.1', () => {
    console.log(`upload-service example on http://127.0.0.1:${port} (gate at ${client.address}, fail ${client.failMode})`);
  });
}
