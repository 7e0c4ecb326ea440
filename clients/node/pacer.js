// The SDK pacer (docs/sdk-pacing.md): a queue a partner wraps around each upload call of the
// Permanent SDK. It reads what the upload gate answers (429 / 503, Retry-After, RateLimit and
// RateLimit-Policy) and keeps an import as fast as the limits allow and no faster.
// ESM, no dependencies. The same algorithm as upload_gate/pacing.py (PacerCore): change both.
//
// PacerCore is the algorithm alone (every method takes `now` in seconds); Pacer drives it
// with promises and timers.

export const STATUS_THROTTLED = 429;
export const STATUS_UNAVAILABLE = 503;
// Answers worth asking again after a backoff: the server may be better in a moment.
const TRANSIENT_STATUSES = new Set([408, 500, 502, 504]);
const POLICY_RATE = 'rpm';
const POLICY_CONCURRENCY = 'inflight';

export const DEFAULT_SETTINGS = Object.freeze({
  initialConcurrency: 2,
  maxConcurrency: 16,
  maxAttempts: 5,
  backoffBaseSeconds: 1,
  backoffMaxSeconds: 60,
  defaultRetryAfterSeconds: 5,
  etaWindow: 20,
  // How long the server must go on counting fewer of our uploads than we have in flight
  // before the pacer believes the others are on other servers (see #followConcurrency).
  spreadConfirmSeconds: 1,
});

/** A header from a fetch Headers, a node:http headers object (lower case) or a plain object. */
export function headerOf(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === 'function') return headers.get(name);
  const lowered = name.toLowerCase();
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() === lowered) return Array.isArray(value) ? value.join(', ') : String(value);
  }
  return null;
}

/** Split a structured-field list on the commas outside sf-strings. */
function splitItems(value) {
  const items = [];
  let current = '';
  let quoted = false;
  for (const char of value) {
    if (char === '"') quoted = !quoted;
    if (char === ',' && !quoted) {
      items.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  items.push(current);
  return items.filter((item) => item.trim());
}

/**
 * A RateLimit or RateLimit-Policy field as {policy: {parameter: value}}: integers as numbers,
 * sf-strings unquoted; items that do not parse are skipped.
 */
export function parseQuotaItems(value) {
  const items = {};
  for (const raw of splitItems(value ?? '')) {
    const name = /^\s*"([^"\\]*)"/.exec(raw);
    if (!name) continue;
    const parameters = {};
    const pattern = /;\s*([a-z*][a-z0-9_.*-]*)(?:=("(?:[^"\\]|\\.)*"|[^;,\s]*))?/g;
    for (const [, key, text = ''] of raw.slice(name[0].length).matchAll(pattern)) {
      if (text.startsWith('"')) parameters[key] = text.slice(1, -1);
      else if (/^-?\d+$/.test(text)) parameters[key] = Number(text);
    }
    items[name[1]] = parameters;
  }
  return items;
}

/** Retry-After as seconds from now: delta-seconds or an HTTP-date; null if unreadable. */
export function retryAfterSeconds(value, wallMs = Date.now()) {
  if (value === null || value === undefined) return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text);
  const when = Date.parse(text);
  return Number.isNaN(when) ? null : Math.max(0, (when - wallMs) / 1000);
}

export class PacerCore {
  constructor(items, settings = {}, random = Math.random) {
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    const { initialConcurrency, maxConcurrency, maxAttempts, etaWindow } = this.settings;
    if (!(initialConcurrency >= 1 && initialConcurrency <= maxConcurrency)) {
      throw new RangeError('initialConcurrency must be within 1..maxConcurrency');
    }
    if (maxAttempts < 1 || etaWindow < 2) throw new RangeError('maxAttempts must be >= 1 and etaWindow >= 2');
    this.random = random;
    this.queue = [...items].map((item, index) => ({ item, index, notBefore: 0, failures: 0, attempts: 0, admitted: false }));
    this.total = this.queue.length;
    this.inFlight = new Map();
    // Uploads in flight whose admission the pacer has learnt: the server's RateLimit `r` was
    // computed with these counted, not with those still waiting for their answer.
    this.admittedInFlight = 0;
    // Since when every admission has shown the server counting at least two fewer of our
    // uploads than we have in flight (null: the last one did not).
    this.spreadSince = null;
    this.limit = initialConcurrency;
    this.holdUntil = 0;
    this.nextStartAt = 0;
    this.done = [];
    this.failed = [];
    this.cancelled = [];
    this.throttled = 0;
    this.retries = 0;
    this.completions = [];
  }

  /** The entry to start now (it is then in flight), or null. */
  nextStart(now) {
    if (this.inFlight.size >= this.limit || now < this.holdUntil || now < this.nextStartAt) return null;
    const position = this.queue.findIndex((entry) => entry.notBefore <= now);
    if (position < 0) return null;
    const [entry] = this.queue.splice(position, 1);
    entry.attempts += 1;
    entry.admitted = false;
    this.inFlight.set(entry.index, entry);
    return entry;
  }

  /** When a start may become possible without an attempt ending; null: only an end can. */
  wakeAt(now) {
    if (!this.queue.length || this.inFlight.size >= this.limit) return null;
    const earliest = Math.min(...this.queue.map((entry) => entry.notBefore));
    return Math.max(earliest, this.holdUntil, this.nextStartAt, now);
  }

  get finished() {
    return !this.queue.length && !this.inFlight.size;
  }

  /** The gate admitted this attempt (its presign answer): grow, within RateLimit. */
  admitted(entry, now, headers) {
    if (entry.admitted) return;
    entry.admitted = true;
    this.admittedInFlight += 1;
    const remaining = parseQuotaItems(headerOf(headers, 'RateLimit'));
    // Grow only while the server says it has room: an answer saying it is full (perhaps with
    // another importer of the same partner) never raises the concurrency.
    if (remaining[POLICY_CONCURRENCY]?.r !== 0) this.limit = Math.min(this.settings.maxConcurrency, this.limit + 1);
    const policy = parseQuotaItems(headerOf(headers, 'RateLimit-Policy'));
    this.#followConcurrency(remaining, policy, now);
    this.#followRate(remaining, policy, now);
  }

  /** The attempt worked; more: the item has another request to make (it goes back in front). */
  succeeded(entry, now, headers, more = false) {
    this.admitted(entry, now, headers);
    this.#end(entry);
    entry.failures = 0;
    if (more) {
      entry.notBefore = now;
      this.queue.unshift(entry);
      return;
    }
    this.done.push(entry);
    this.completions.push(now);
    if (this.completions.length > this.settings.etaWindow) this.completions.shift();
  }

  /** An HTTP answer of 400 or more: wait, retry or give up, as the status says. */
  rejected(entry, now, status, headers) {
    if (status === STATUS_THROTTLED || status === STATUS_UNAVAILABLE) this.#throttled(entry, now, status, headers);
    else if (TRANSIENT_STATUSES.has(status) || status >= 500) this.transientError(entry, now, `HTTP ${status}`);
    else this.permanentError(entry, `HTTP ${status}`);
  }

  #throttled(entry, now, status, headers) {
    this.#end(entry);
    this.throttled += 1;
    const wait = retryAfterSeconds(headerOf(headers, 'Retry-After')) ?? this.settings.defaultRetryAfterSeconds;
    const remaining = parseQuotaItems(headerOf(headers, 'RateLimit'));
    const hasFields = Object.keys(remaining).length > 0;
    if (status === STATUS_UNAVAILABLE && !hasFields) {
      // A pause (or a gate failing closed) is not a quota: nobody may start until then.
      this.holdUntil = Math.max(this.holdUntil, now + wait);
      entry.notBefore = this.holdUntil;
    } else {
      entry.notBefore = now + wait;
      if (!hasFields) this.limit = Math.max(1, Math.min(this.limit, this.inFlight.size));
      const policy = parseQuotaItems(headerOf(headers, 'RateLimit-Policy'));
      this.#followConcurrency(remaining, policy, now);
      this.#followRate(remaining, policy, now);
    }
    this.#requeue(entry);
  }

  /** A timeout or network error: retried after a jittered backoff, or failed; returns whether retried. */
  transientError(entry, now, reason = 'network error') {
    this.#end(entry);
    entry.failures += 1;
    this.limit = Math.max(1, Math.floor(this.limit / 2));
    if (entry.failures >= this.settings.maxAttempts) {
      this.failed.push({ entry, reason: `${reason} (${entry.failures} attempts in a row)` });
      return false;
    }
    this.retries += 1;
    const { backoffBaseSeconds, backoffMaxSeconds } = this.settings;
    const backoff = Math.min(backoffMaxSeconds, backoffBaseSeconds * 2 ** (entry.failures - 1));
    entry.notBefore = now + backoff * (0.5 + 0.5 * this.random());
    this.#requeue(entry);
    return true;
  }

  /** A 4xx that asking again will not change, or a bug in the upload function. */
  permanentError(entry, reason) {
    this.#end(entry);
    this.failed.push({ entry, reason });
  }

  /** An upload that ended with an error after the import was cancelled: cancelled, not failed. */
  cancelledInFlight(entry) {
    this.#end(entry);
    this.cancelled.push(entry);
  }

  /** Nothing new starts; the items not started are cancelled. */
  cancel() {
    this.cancelled.push(...this.queue);
    this.queue = [];
  }

  progress(now) {
    const heldForSeconds = Math.max(0, this.holdUntil - now);
    return {
      done: this.done.length,
      failed: this.failed.length,
      cancelled: this.cancelled.length,
      inFlight: this.inFlight.size,
      waiting: this.queue.length,
      concurrency: this.limit,
      throttled: this.throttled,
      retries: this.retries,
      heldForSeconds,
      etaSeconds: this.#etaSeconds(heldForSeconds),
    };
  }

  #etaSeconds(heldForSeconds) {
    const left = this.queue.length + this.inFlight.size;
    if (!left) return 0;
    const times = this.completions;
    if (times.length < 2 || times[times.length - 1] <= times[0]) return null;
    const perSecond = (times.length - 1) / (times[times.length - 1] - times[0]);
    return heldForSeconds + left / perSecond;
  }

  #end(entry) {
    if (this.inFlight.delete(entry.index) && entry.admitted) this.admittedInFlight -= 1;
  }

  /** Back in the queue at its own place (the queue stays in the order given). */
  #requeue(entry) {
    const position = this.queue.findIndex((other) => other.index > entry.index);
    if (position < 0) this.queue.push(entry);
    else this.queue.splice(position, 0, entry);
  }

  #followConcurrency(remaining, policy, now) {
    const room = remaining[POLICY_CONCURRENCY]?.r;
    if (!Number.isInteger(room)) return;
    let cap = this.admittedInFlight + room;
    const quota = policy[POLICY_CONCURRENCY]?.q;
    // The server counts quota - room uploads of the partner. When that is all of ours, it is
    // the only server we reach, and its quota is our ceiling: uploads it has already ended,
    // whose answers are still on their way to us, must not raise it. When it counts fewer,
    // either such answers are on their way (uploads that ended together: the gap closes
    // within moments) or the others are on other servers (share mode over a fleet: the gap
    // stays). Only a gap that lasts spreadConfirmSeconds lifts the ceiling.
    if (Number.isInteger(quota) && !this.#spreadConfirmed(quota - room, now)) cap = Math.min(cap, quota);
    this.limit = Math.max(1, Math.min(this.limit, cap));
  }

  #spreadConfirmed(countedByServer, now) {
    if (this.admittedInFlight - countedByServer < 2) {
      this.spreadSince = null;
      return false;
    }
    if (this.spreadSince === null) this.spreadSince = now;
    return now - this.spreadSince >= this.settings.spreadConfirmSeconds;
  }

  #followRate(remaining, policy, now) {
    const rate = remaining[POLICY_RATE];
    if (!rate || rate.r !== 0) return;
    let reset = Number.isInteger(rate.t) ? rate.t : 60;
    const quota = policy[POLICY_RATE];
    if (quota && Number.isInteger(quota.q) && quota.q > 0) reset = Math.min(reset, (quota.w ?? 60) / quota.q);
    this.nextStartAt = Math.max(this.nextStartAt, now + reset);
  }
}

/** What an upload error or answer says: {status, headers} for HTTP, else null. */
function httpAnswerOf(value) {
  if (!value || typeof value !== 'object') return null;
  for (const holder of [value, value.response]) {
    const status = holder?.status ?? holder?.statusCode;
    if (Number.isInteger(status) && status >= 100 && status <= 599) return { status, headers: holder.headers };
  }
  return null;
}

const NETWORK_ERROR_NAMES = new Set(['TimeoutError', 'AbortError', 'FetchError']);

function isNetworkError(error) {
  if (!error || typeof error !== 'object') return false;
  const code = error.code ?? error.cause?.code;
  return (
    NETWORK_ERROR_NAMES.has(error.name) ||
    (typeof code === 'string' && /^(E[A-Z]|UND_ERR)/.test(code)) ||
    error.message === 'fetch failed'
  );
}

/** Runs upload(item, {signal, admitted, attempt}) over the items, as fast as the gate's answers allow. */
export class Pacer {
  #core = null;
  #controller = new AbortController();
  #timer = null;
  #wake = null;

  constructor({ upload, onProgress, signal, now, random = Math.random, ...settings }) {
    if (typeof upload !== 'function') throw new TypeError('upload must be a function');
    this.upload = upload;
    this.onProgress = onProgress ?? null;
    this.settings = { ...DEFAULT_SETTINGS, ...settings };
    this.now = now ?? (() => performance.now() / 1000);
    this.random = random;
    new PacerCore([], this.settings); // check the settings now, not at run()
    if (signal) {
      if (signal.aborted) this.cancel();
      else signal.addEventListener('abort', () => this.cancel(), { once: true });
    }
  }

  get signal() {
    return this.#controller.signal;
  }

  /** Resolves to {done: [{item, value}], failed: [{item, reason}], cancelled: [items], progress}. */
  async run(items) {
    const core = new PacerCore(items, this.settings, this.random);
    this.#core = core;
    const results = new Map();
    while (!core.finished) {
      if (this.#controller.signal.aborted && core.queue.length) core.cancel();
      let entry;
      while ((entry = core.nextStart(this.now())) !== null) this.#attempt(core, entry, results);
      this.#report();
      if (core.finished) break;
      await this.#sleepUntil(core.wakeAt(this.now()));
    }
    this.#report();
    return {
      done: core.done.map((entry) => ({ item: entry.item, value: results.get(entry.index) })),
      failed: core.failed.map(({ entry, reason }) => ({ item: entry.item, reason })),
      cancelled: core.cancelled.map((entry) => entry.item),
      progress: core.progress(this.now()),
    };
  }

  /** Stop starting uploads; those in flight get the abort signal and end as they end. */
  cancel() {
    this.#controller.abort();
    this.#wakeUp();
  }

  async #attempt(core, first, results) {
    await null; // the upload starts after the loop that started it, even if it answers at once
    const signal = this.#controller.signal;
    // An attempt that ends takes the next item itself when the pacer allows it: no detour
    // through the run loop's next turn.
    for (let entry = first; entry !== null; entry = signal.aborted ? null : core.nextStart(this.now())) {
      await this.#once(core, entry, results, signal);
      this.#report();
      this.#wakeUp(); // the run loop starts the others the pacer now allows
    }
  }

  async #once(core, entry, results, signal) {
    const admitted = (headers) => core.admitted(entry, this.now(), headers);
    try {
      const value = await this.upload(entry.item, { signal, admitted, attempt: entry.attempts });
      const answer = httpAnswerOf(value);
      if (answer && answer.status >= 400) {
        core.rejected(entry, this.now(), answer.status, answer.headers);
      } else {
        results.set(entry.index, value);
        core.succeeded(entry, this.now(), answer?.headers);
      }
    } catch (error) {
      this.#failed(core, entry, error, signal);
    }
  }

  #failed(core, entry, error, signal) {
    const answer = httpAnswerOf(error);
    if (answer) core.rejected(entry, this.now(), answer.status, answer.headers);
    else if (signal.aborted) core.cancelledInFlight(entry);
    else if (isNetworkError(error)) core.transientError(entry, this.now(), `${error.name}: ${error.message}`);
    else core.permanentError(entry, `${error?.name ?? 'Error'}: ${error?.message ?? error}`);
  }

  #sleepUntil(wakeAt) {
    return new Promise((resolve) => {
      this.#wake = resolve;
      if (wakeAt !== null) {
        const delayMs = Math.max(0, (wakeAt - this.now()) * 1000);
        this.#timer = setTimeout(() => this.#wakeUp(), Math.ceil(delayMs));
      }
    });
  }

  #wakeUp() {
    clearTimeout(this.#timer);
    this.#timer = null;
    const wake = this.#wake;
    this.#wake = null;
    // Through the event loop: an upload that answers at once (a cache, a fake) must not keep
    // the loop in microtasks, starving timers and I/O.
    if (wake) setImmediate(wake);
  }

  #report() {
    if (this.onProgress && this.#core) this.onProgress(this.#core.progress(this.now()));
  }
}
