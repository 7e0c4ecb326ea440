// Compiled by `npx tsc --noEmit -p .` only (never run): the declarations describe how the
// client and the middleware are used, and reject what would be a mistake.
import http from 'node:http';
import { presignGate, problemOf, UploadGateBadRequest, UploadGateClient, type Decision } from '../index.js';

const client = new UploadGateClient({ socketPath: '/run/upload-gate/gate.sock', failMode: 'closed', timeoutMs: 100 });
const overPort = new UploadGateClient({ port: 8112, agent: new http.Agent({ keepAlive: true }) });

async function presign(clientId: string, sizeBytes: number): Promise<string | null> {
  const decision: Decision = await client.admit(clientId, sizeBytes);
  if (!decision.admitted) {
    const body = problemOf(decision);
    const status: number = body.status;
    return `${status} ${decision.headers['Retry-After'] ?? ''} ${decision.source}`;
  }
  const renewed = await client.renew(decision.lease_id);
  const expires: number | null = renewed.expires_in_seconds;
  const released = await client.release(decision.lease_id, 'completed');
  return released.released && expires !== null ? decision.lease_id : null;
}

// @ts-expect-error: an outcome outside the protocol's three
client.release('lease', 'done');
// @ts-expect-error: failMode is 'open' or 'closed'
new UploadGateClient({ failMode: 'maybe' });

interface AuthedRequest extends http.IncomingMessage {
  auth: { clientId: string };
  body: { size: number };
}
const middleware = presignGate<AuthedRequest, http.ServerResponse & { locals?: Record<string, any> }>({
  client,
  clientId: (req) => req.auth.clientId,
  sizeBytes: (req) => req.body.size,
});
const field: string | null = new UploadGateBadRequest('bad', 'size_bytes').field;
void [presign, middleware, field, overPort];
