// The upload gate sidecar's Node client and an Express-style middleware for presign routes
// (docs/upload-gate.md, "Clients"). ESM, Node 18+, no dependencies: node:http with a
// keep-alive Agent, over the sidecar's Unix socket (default) or a 127.0.0.1 port.
//
// Every decision is the sidecar's answer plus `source`: "sidecar" when the sidecar decided,
// "fail-open" or "fail-closed" when it could not be reached (connect refused, socket missing,
// timeout, a 5xx, an answer that is not the protocol's JSON). Failing open is the default:
// admitted without a lease, counted (client.stats) and logged. Failing closed answers 503
// with Retry-After from the options.

import http from 'node:http';

export const SOURCE_SIDECAR = 'sidecar';
export const SOURCE_FAIL_OPEN = 'fail-open';
export const SOURCE_FAIL_CLOSED = 'fail-closed';
export const OUTCOMES = Object.freeze(['completed', 'failed', 'timed_out']);
export const DEFAULT_SOCKET_PATH = '/run/upload-gate/gate.sock';
// The same words as the Python thin client (upload_gate/client.py) for a fail-closed 503.
export const UNAVAILABLE_REASON = 'upload admission is unavailable; try again later';

/** The sidecar refused what we sent (HTTP 400): a bug in the caller, never the sidecar being away. */
export class UploadGateBadRequest extends Error {
  constructor(message, field = null) {
    super(message);
    this.name = 'UploadGateBadRequest';
    this.field = field;
  }
}

export class UploadGateClient {
  #socketPath;
  #host;
  #port;
  #timeoutMs;
  #failMode;
  #failClosedRetryAfterSeconds;
  #log;
  #agent;
  #ownsAgent;
  #logEveryMs;
  #lastLoggedAt = -Infinity;
  #failuresSinceLogged = 0;

  constructor({
    socketPath,
    port,
    host = '127.0.0.1',
    timeoutMs = 250,
    failMode = 'open',
    failClosedRetryAfterSeconds = 5,
    log = (line) => console.error(line),
    logEverySeconds = 60,
    agent,
    maxSockets = 16,
  } = {}) {
    if (failMode !== 'open' && failMode !== 'closed') {
      throw new TypeError("failMode must be 'open' or 'closed'");
    }
    if (port !== undefined && port !== null && !(Number.isInteger(port) && port > 0 && port < 65536)) {
      throw new TypeError('port must be a TCP port number');
    }
    this.#port = port ?? null;
    this.#socketPath = this.#port === null ? socketPath ?? DEFAULT_SOCKET_PATH : null;
    this.#host = host;
    this.#timeoutMs = timeoutMs;
    this.#failMode = failMode;
    this.#failClosedRetryAfterSeconds = failClosedRetryAfterSeconds;
    this.#log = log;
    this.#logEveryMs = logEverySeconds * 1000;
    this.#ownsAgent = agent === undefined;
    this.#agent = agent ?? new http.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });
    /** Calls made, connections they opened (keep-alive: few), and fail-open / fail-closed answers. */
    this.stats = { requests: 0, connectionsOpened: 0, failOpen: 0, failClosed: 0 };
  }

  /** unix:PATH or http://HOST:PORT */
  get address() {
    return this.#socketPath !== null ? `unix:${this.#socketPath}` : `http://${this.#host}:${this.#port}`;
  }

  get failMode() {
    return this.#failMode;
  }

  /** May an upload of sizeBytes by clientId start? Resolves to a decision; never rejects for the sidecar being away. */
  async admit(clientId, sizeBytes) {
    if (typeof clientId !== 'string' || clientId === '') {
      throw new UploadGateBadRequest('client_id must be a non-empty string', 'client_id');
    }
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) {
      throw new UploadGateBadRequest('size_bytes must be a whole number of bytes, 0 or more', 'size_bytes');
    }
    const answer = await this.#post('/v1/admit', { client_id: clientId, size_bytes: sizeBytes });
    if (typeof answer === 'string' || typeof answer.admitted !== 'boolean' || !Number.isInteger(answer.status)) {
      return this.#unreachableDecision(typeof answer === 'string' ? answer : 'admit answer without a decision');
    }
    return { headers: {}, ...answer, source: SOURCE_SIDECAR };
  }

  /** End an upload's lease. A null lease (fail-open, or nothing admitted) is a no-op. */
  async release(leaseId, outcome = 'completed') {
    if (!OUTCOMES.includes(outcome)) {
      throw new UploadGateBadRequest('outcome must be completed, failed or timed_out', 'outcome');
    }
    if (leaseId === null || leaseId === undefined || leaseId === '') {
      return { released: false, source: null }; // nothing was asked
    }
    const answer = await this.#post('/v1/release', { lease_id: leaseId, outcome });
    if (typeof answer === 'string' || typeof answer.released !== 'boolean') {
      // Not lost: the sidecar expires the lease after its lease timeout.
      this.#log(`upload-gate: release of lease ${leaseId} failed: ${typeof answer === 'string' ? answer : 'no released field'}`);
      return { released: false, source: this.#unreachableSource() };
    }
    return { ...answer, source: SOURCE_SIDECAR };
  }

  /** Keep a long upload's lease. A null lease is a no-op. */
  async renew(leaseId) {
    if (leaseId === null || leaseId === undefined || leaseId === '') {
      return { renewed: false, expires_in_seconds: null, source: null };
    }
    const answer = await this.#post('/v1/renew', { lease_id: leaseId });
    if (typeof answer === 'string' || typeof answer.renewed !== 'boolean') {
      this.#log(`upload-gate: renew of lease ${leaseId} failed: ${typeof answer === 'string' ? answer : 'no renewed field'}`);
      return { renewed: false, expires_in_seconds: null, source: this.#unreachableSource() };
    }
    return { ...answer, source: SOURCE_SIDECAR };
  }

  /** Close the idle keep-alive connections (only those of an Agent this client made). */
  close() {
    if (this.#ownsAgent) this.#agent.destroy();
  }

  async #post(path, body) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#request(path, body);
      } catch (error) {
        if (error instanceof UploadGateBadRequest) throw error;
        // A kept-alive connection that the sidecar closed while idle fails at once; Node's
        // advice is to send such a request again, once, on a fresh connection.
        if (attempt === 1 && error.reusedSocket && error.code === 'ECONNRESET') continue;
        return `sidecar unreachable at ${this.address}: ${[error.code, error.message].filter(Boolean).join(' ')}`;
      }
    }
  }

  /** Resolves to the decoded JSON object of a 200, or a string saying why there is none. */
  #request(path, body) {
    const payload = JSON.stringify(body);
    const options = {
      method: 'POST',
      path,
      agent: this.#agent,
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': Buffer.byteLength(payload),
        Accept: 'application/json',
        Host: 'upload-gate',
      },
    };
    if (this.#socketPath !== null) options.socketPath = this.#socketPath;
    else Object.assign(options, { host: this.#host, port: this.#port });
    this.stats.requests += 1;
    return new Promise((resolve, reject) => {
      let deadline = null;
      const fail = (error) => {
        clearTimeout(deadline);
        error.reusedSocket = request.reusedSocket;
        reject(error);
      };
      const request = http.request(options, (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('error', fail);
        response.on('end', () => {
          clearTimeout(deadline);
          try {
            resolve(this.#decode(path, response.statusCode, Buffer.concat(chunks).toString('utf8')));
          } catch (refused) {
            reject(refused);
          }
        });
      });
      request.on('socket', (socket) => {
        // The deadline runs from the moment this call has a connection (connect included), not
        // while it waits behind this process's own calls for one of the Agent's sockets.
        deadline = setTimeout(() => {
          const timeout = new Error(`no answer within ${this.#timeoutMs} ms`);
          timeout.code = 'ETIMEDOUT';
          request.destroy(timeout);
        }, this.#timeoutMs);
        if (request.reusedSocket) return;
        socket.setNoDelay(true);
        socket.once('connect', () => {
          this.stats.connectionsOpened += 1;
        });
      });
      request.on('error', fail);
      request.end(payload);
    });
  }

  #decode(path, status, text) {
    let answer = null;
    try {
      answer = JSON.parse(text);
    } catch {
      answer = null;
    }
    const isObject = answer !== null && typeof answer === 'object' && !Array.isArray(answer);
    if (status === 400) {
      throw new UploadGateBadRequest(isObject ? String(answer.error ?? 'bad request') : 'bad request', isObject ? answer.field ?? null : null);
    }
    if (status !== 200) return `sidecar answered HTTP ${status} on ${path}`;
    if (!isObject) return `sidecar answered something other than a JSON object on ${path}`;
    return answer;
  }

  /** The first failure, then at most one line per logEverySeconds: a sidecar that is down
   * for a minute must not write a line for every upload of a busy process. */
  #logFailure(source, why) {
    this.#failuresSinceLogged += 1;
    const now = performance.now();
    if (now - this.#lastLoggedAt < this.#logEveryMs) return;
    const count = this.#failuresSinceLogged === 1 ? '' : ` (${this.#failuresSinceLogged} admits since the last line)`;
    this.#log(`upload-gate: admit answered ${source} (${why})${count}`);
    this.#lastLoggedAt = now;
    this.#failuresSinceLogged = 0;
  }

  #unreachableSource() {
    return this.#failMode === 'closed' ? SOURCE_FAIL_CLOSED : SOURCE_FAIL_OPEN;
  }

  #unreachableDecision(why) {
    const source = this.#unreachableSource();
    if (source === SOURCE_FAIL_CLOSED) this.stats.failClosed += 1;
    else this.stats.failOpen += 1;
    this.#logFailure(source, why);
    const decision = {
      admitted: true,
      status: 200,
      reason: '',
      limit: null,
      retry_after_seconds: null,
      lease_id: null,
      lease_expires_in_seconds: null,
      headers: {},
      problem: null,
      source,
      error: why,
    };
    if (source === SOURCE_FAIL_CLOSED) {
      const retryAfter = this.#failClosedRetryAfterSeconds;
      Object.assign(decision, {
        admitted: false,
        status: 503,
        reason: UNAVAILABLE_REASON,
        retry_after_seconds: retryAfter,
        headers: { 'Retry-After': String(retryAfter) },
        problem: { type: 'about:blank', title: 'Service Unavailable', status: 503, detail: UNAVAILABLE_REASON },
      });
    }
    return decision;
  }
}

/**
 * The RFC 9457 problem body for a rejected decision: the sidecar's problem members when it gave
 * some (reduced capacity), else about:blank with the reason as detail.
 */
export function problemOf(decision) {
  const status = decision.status;
  return {
    type: 'about:blank',
    title: status === 429 ? 'Too Many Requests' : 'Service Unavailable',
    detail: decision.reason ?? '',
    ...(decision.problem ?? {}),
    status,
    limit: decision.limit ?? null,
    retry_after_seconds: decision.retry_after_seconds ?? null,
    source: decision.source,
  };
}

/** Copy the decision's headers (RateLimit-Policy, RateLimit, Retry-After) into a response. */
export function copyHeaders(decision, res) {
  for (const [name, value] of Object.entries(decision.headers ?? {})) {
    res.setHeader(name, String(value));
  }
  res.setHeader('X-Upload-Gate-Source', decision.source);
}

function sendJson(res, status, body, contentType = 'application/json') {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/**
 * Express-style middleware for presign routes: asks the gate, answers 429/503 itself (the
 * gate's headers and an RFC 9457 problem+json body), or copies the RateLimit headers, sets
 * res.locals.uploadLease = {leaseId, expiresInSeconds, source, decision} and calls next().
 * Works with plain node:http too (req, res, next).
 *
 *   app.post('/fileDestinationUrl', presignGate({client, clientId: (req) => req.auth.clientId,
 *     sizeBytes: (req) => req.body.size}), handler)
 */
export function presignGate({ client, clientId, sizeBytes }) {
  if (!client || typeof client.admit !== 'function') throw new TypeError('presignGate needs a client');
  if (typeof clientId !== 'function' || typeof sizeBytes !== 'function') {
    throw new TypeError('presignGate needs clientId(req) and sizeBytes(req) functions');
  }
  return async function uploadGateMiddleware(req, res, next) {
    let decision;
    try {
      const id = await clientId(req);
      const size = await sizeBytes(req);
      decision = await client.admit(id, typeof size === 'string' && /^\d+$/.test(size) ? Number(size) : size);
    } catch (error) {
      if (error instanceof UploadGateBadRequest) {
        const field = error.field === 'size_bytes' ? 'size' : error.field;
        sendJson(res, 400, { type: 'about:blank', title: 'Bad Request', status: 400, detail: error.message, field }, 'application/problem+json');
        return;
      }
      next(error);
      return;
    }
    copyHeaders(decision, res);
    if (!decision.admitted) {
      sendJson(res, decision.status, problemOf(decision), 'application/problem+json');
      return;
    }
    res.locals ??= {};
    res.locals.uploadLease = {
      leaseId: decision.lease_id,
      expiresInSeconds: decision.lease_expires_in_seconds,
      source: decision.source,
      decision,
    };
    next();
  };
}
