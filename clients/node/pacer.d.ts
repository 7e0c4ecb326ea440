// Types of the SDK pacer (pacer.js); the algorithm is in docs/sdk-pacing.md.

/** Header fields as fetch's Headers, node:http's headers object or a plain object. */
export type HeadersLike = { get(name: string): string | null } | Record<string, string | string[] | number | undefined>;

export interface PacerSettings {
  /** Uploads at once to begin with (default 2). */
  initialConcurrency?: number;
  /** Uploads at once at most (default 16); the server's RateLimit usually binds first. */
  maxConcurrency?: number;
  /** Consecutive timeouts / network errors / 5xx of one item before it fails (default 5). */
  maxAttempts?: number;
  /** The retry delay of a failing item doubles from this (default 1 s), ×0.5–1 jitter. */
  backoffBaseSeconds?: number;
  /** ... up to this (default 60 s). */
  backoffMaxSeconds?: number;
  /** A 429/503 without a readable Retry-After waits this long (default 5 s). */
  defaultRetryAfterSeconds?: number;
  /** Completions the time-left estimate averages over (default 20). */
  etaWindow?: number;
  /** A server counting at least two fewer of our uploads than we have in flight for this long
   * (default 1 s) means the others are on other servers: its quota stops being our ceiling. */
  spreadConfirmSeconds?: number;
}

export declare const DEFAULT_SETTINGS: Readonly<Required<PacerSettings>>;

export interface Progress {
  /** Items uploaded. */
  done: number;
  /** Items given up: a 4xx, a bug in the upload function, or maxAttempts failures in a row. */
  failed: number;
  /** Items not uploaded because the import was cancelled. */
  cancelled: number;
  /** Uploads under way now. */
  inFlight: number;
  /** Items not started yet or waiting to be tried again. */
  waiting: number;
  /** How many the pacer lets run at once now. */
  concurrency: number;
  /** 429 / 503 answers so far (each item was tried again: none is lost). */
  throttled: number;
  /** Attempts after a timeout or network error so far. */
  retries: number;
  /** While imports are paused: seconds until the pacer asks again; else 0. */
  heldForSeconds: number;
  /** Items left over the recent completion rate, plus the pause still to wait; null until two are done. */
  etaSeconds: number | null;
}

export interface AttemptContext {
  /** Aborted when the import is cancelled: pass it to fetch and the S3 post. */
  signal: AbortSignal;
  /** Call with the presign answer's headers once the gate admitted the upload. */
  admitted(headers?: HeadersLike | null): void;
  /** 1 for the first attempt of this item, 2 for its first retry, ... */
  attempt: number;
}

/** An upload that answered: a status of 400 or more is read as the gate's answer. */
export interface HttpAnswerLike {
  status: number;
  headers?: HeadersLike | null;
}

export interface PacerOptions<Item, Value> extends PacerSettings {
  /**
   * Uploads one item. Resolve when it is stored; resolve to (or throw) something with a `status`
   * of 400 or more and `headers` for an HTTP answer; throw a network error to have it retried.
   */
  upload: (item: Item, context: AttemptContext) => Promise<Value | HttpAnswerLike> | Value | HttpAnswerLike;
  /** Called after every change. */
  onProgress?: (progress: Progress) => void;
  /** Cancels the import when aborted (the same as pacer.cancel()). */
  signal?: AbortSignal;
  /** Seconds on a monotonic clock (default performance.now() / 1000). */
  now?: () => number;
  /** Uniform in [0, 1) for the retry jitter (default Math.random). */
  random?: () => number;
}

export interface PacerResult<Item, Value> {
  done: { item: Item; value: Value }[];
  failed: { item: Item; reason: string }[];
  cancelled: Item[];
  progress: Progress;
}

export declare class Pacer<Item = unknown, Value = unknown> {
  constructor(options: PacerOptions<Item, Value>);
  /** What the uploads in flight are given; aborted by cancel(). */
  readonly signal: AbortSignal;
  /** Resolves once every item is done, failed or cancelled and nothing is in flight. */
  run(items: Iterable<Item>): Promise<PacerResult<Item, Value>>;
  /** Stop starting uploads; those in flight get the abort signal and end as they end. */
  cancel(): void;
}

export interface PacerEntry<Item> {
  readonly item: Item;
  readonly index: number;
  notBefore: number;
  failures: number;
  attempts: number;
  admitted: boolean;
}

/** The algorithm alone: every method takes `now` in seconds (for simulations and tests). */
export declare class PacerCore<Item = unknown> {
  constructor(items: Iterable<Item>, settings?: PacerSettings, random?: () => number);
  readonly total: number;
  readonly limit: number;
  readonly holdUntil: number;
  readonly finished: boolean;
  readonly inFlight: Map<number, PacerEntry<Item>>;
  nextStart(now: number): PacerEntry<Item> | null;
  wakeAt(now: number): number | null;
  admitted(entry: PacerEntry<Item>, now: number, headers?: HeadersLike | null): void;
  succeeded(entry: PacerEntry<Item>, now: number, headers?: HeadersLike | null, more?: boolean): void;
  rejected(entry: PacerEntry<Item>, now: number, status: number, headers?: HeadersLike | null): void;
  transientError(entry: PacerEntry<Item>, now: number, reason?: string): boolean;
  permanentError(entry: PacerEntry<Item>, reason: string): void;
  cancelledInFlight(entry: PacerEntry<Item>): void;
  cancel(): void;
  progress(now: number): Progress;
}

export declare function parseQuotaItems(value: string | null | undefined): Record<string, Record<string, number | string>>;
export declare function retryAfterSeconds(value: string | null | undefined, wallMs?: number): number | null;
export declare function headerOf(headers: HeadersLike | null | undefined, name: string): string | null;
export declare const STATUS_THROTTLED: 429;
export declare const STATUS_UNAVAILABLE: 503;
