// Types of the upload gate sidecar's Node client (index.js); the wire protocol is in
// docs/upload-gate.md ("The sidecar" and "Clients").
import type { Agent } from 'node:http';

export type Source = 'sidecar' | 'fail-open' | 'fail-closed';
export type Outcome = 'completed' | 'failed' | 'timed_out';
export type FailMode = 'open' | 'closed';

export declare const SOURCE_SIDECAR: 'sidecar';
export declare const SOURCE_FAIL_OPEN: 'fail-open';
export declare const SOURCE_FAIL_CLOSED: 'fail-closed';
export declare const OUTCOMES: readonly Outcome[];
export declare const DEFAULT_SOCKET_PATH: string;
export declare const UNAVAILABLE_REASON: string;

/** RFC 9457 members, as the sidecar gives them (reduced capacity) or problemOf() builds them. */
export interface ProblemMembers {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  [member: string]: unknown;
}

/** What admit() resolves to: the sidecar's decision plus where it came from. */
export interface Decision {
  admitted: boolean;
  /** 200 admitted, 429 over a limit, 503 paused / reduced capacity / gate unavailable (fail-closed). */
  status: 200 | 429 | 503 | number;
  reason: string;
  /** The rule that rejected (e.g. "max_concurrent_uploads"), null when admitted. */
  limit: string | null;
  retry_after_seconds: number | null;
  /** Send it back with release(); null when rejected or when the gate failed open. */
  lease_id: string | null;
  lease_expires_in_seconds: number | null;
  /** Exactly the headers to copy into the response: RateLimit-Policy, RateLimit, Retry-After. */
  headers: Record<string, string>;
  problem: ProblemMembers | null;
  source: Source;
  /** Why the sidecar could not be reached (fail-open / fail-closed answers only). */
  error?: string;
}

export interface ReleaseAnswer {
  /** false: already ended or expired, no lease, or the sidecar was away (it expires the lease itself). */
  released: boolean;
  /** null: no lease was given, nothing was asked. */
  source: Source | null;
}

export interface RenewAnswer {
  renewed: boolean;
  expires_in_seconds: number | null;
  source: Source | null;
}

export interface ClientStats {
  requests: number;
  connectionsOpened: number;
  failOpen: number;
  failClosed: number;
}

export interface UploadGateClientOptions {
  /** The sidecar's Unix socket; default /run/upload-gate/gate.sock. Ignored when port is set. */
  socketPath?: string;
  /** A 127.0.0.1 port instead of the socket. */
  port?: number | null;
  host?: string;
  /** Deadline of one call, connect included (default 250 ms); past it the sidecar counts as away. */
  timeoutMs?: number;
  /** 'open' (default): admit without a lease when the sidecar is away; 'closed': answer 503. */
  failMode?: FailMode;
  /** Retry-After of a fail-closed 503 (default 5). */
  failClosedRetryAfterSeconds?: number;
  /** Receives the failure lines; default console.error. */
  log?: (line: string) => void;
  /** Failures are logged once, then at most once per this many seconds, with a count (default 60). */
  logEverySeconds?: number;
  /** A keep-alive Agent of your own (close() then leaves it open). */
  agent?: Agent;
  /** Connections the client's own Agent keeps open at most (default 16). */
  maxSockets?: number;
}

/** The sidecar refused what was sent (HTTP 400, or rejected before sending): a bug in the caller. */
export declare class UploadGateBadRequest extends Error {
  constructor(message: string, field?: string | null);
  readonly field: string | null;
}

export declare class UploadGateClient {
  constructor(options?: UploadGateClientOptions);
  readonly stats: ClientStats;
  /** unix:PATH or http://HOST:PORT */
  readonly address: string;
  readonly failMode: FailMode;
  /** Never rejects because the sidecar is away (see source); rejects with UploadGateBadRequest on bad input. */
  admit(clientId: string, sizeBytes: number): Promise<Decision>;
  release(leaseId: string | null | undefined, outcome?: Outcome): Promise<ReleaseAnswer>;
  renew(leaseId: string | null | undefined): Promise<RenewAnswer>;
  close(): void;
}

/** The RFC 9457 body of a rejected decision, with its status, limit, retry_after_seconds and source. */
export declare function problemOf(decision: Decision): ProblemMembers & {
  status: number;
  limit: string | null;
  retry_after_seconds: number | null;
  source: Source;
};

/** The response side the middleware needs: Express's res and node:http's ServerResponse both fit. */
export interface ResponseLike {
  statusCode: number;
  setHeader(name: string, value: string | number): unknown;
  end(body?: string): unknown;
  locals?: Record<string, any>;
}

export declare function copyHeaders(decision: Decision, res: ResponseLike): void;

export interface UploadLease {
  leaseId: string | null;
  expiresInSeconds: number | null;
  source: Source;
  decision: Decision;
}

export interface PresignGateOptions<Req> {
  client: Pick<UploadGateClient, 'admit'>;
  /** The partner's OAuth client id of this request (from your auth). */
  clientId: (req: Req) => string | Promise<string>;
  /** The declared size of the upload, in bytes (a string of digits is accepted). */
  sizeBytes: (req: Req) => number | string | Promise<number | string>;
}

/**
 * Middleware for presign routes: answers 429/503 (gate headers + problem+json) or 400 for a bad
 * size, else sets res.locals.uploadLease and calls next().
 */
export declare function presignGate<Req = any, Res extends ResponseLike = ResponseLike>(
  options: PresignGateOptions<Req>,
): (req: Req, res: Res, next: (error?: unknown) => void) => Promise<void>;
