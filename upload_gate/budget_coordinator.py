"""The coordinator of leased budgets: one atomic Lua script in Redis grants slices.

Each gate holds a slice of each active client's fleet-wide budget and decides within it
(upload_gate/leased.py). One call per client and refill asks for what the gate's demand
needs and gives back what it does not. Keys of one client ({client} is a Redis Cluster
hash tag, so one script touches one slot):

    <prefix>:{<client>}:slots        hash gate -> concurrency slots held
    <prefix>:{<client>}:slots_want   hash gate -> slots it would use (its demand)
    <prefix>:{<client>}:bytes        hash gate -> bytes in flight held
    <prefix>:{<client>}:bytes_want   hash gate -> bytes in flight it would use
    <prefix>:{<client>}:holders      sorted set gate -> expiry of its slice (wall us)
    <prefix>:{<client>}:tat          fleet-wide GCRA theoretical arrival time (wall us)
    <prefix>:{<client>}:day:<n>      bytes of UTC day n granted to gates (two-day expiry)

Concurrency and bytes in flight: a gate never loses slots it did not give up (`keep`, the
cap it decides on during the call, and at least its uploads in flight); it only gains from
what is free (limit - what the others hold), and never more than its max-min fair part of
the limit among the gates that want some (`target`; with every want met, the part of what
is left over too). So the sum of slices never grows past the limit. A holder whose expiry
has passed (a crashed gate) is dropped before counting.

Rate: tokens are taken from the fleet-wide GCRA (each one a conforming request at grant
time); unspent tokens come back by moving `tat` back. Daily bytes: allowances taken from
the day's counter; unspent allowance is given back the same way.
"""

from __future__ import annotations

from typing import Any

from .redis_counts import fail_fast_client

LEASE_LUA = """
local gate = ARGV[1]
local now = tonumber(ARGV[2])

local expired = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', ARGV[2])
for _, holder in ipairs(expired) do
  redis.call('HDEL', KEYS[1], holder)
  redis.call('HDEL', KEYS[2], holder)
  redis.call('HDEL', KEYS[3], holder)
  redis.call('HDEL', KEYS[4], holder)
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', ARGV[2]) end

local function num(value) return string.format('%.0f', value) end

-- Max-min fairness: gates wanting less than an equal part get what they want, the
-- others share the rest equally (this gate's part is returned). When every want is met,
-- what is left over is shared too: a lone gate may keep the whole limit.
local function fair_part(wants_key, cap, my_want)
  local values = redis.call('HVALS', wants_key)
  local wants = {}
  for i, v in ipairs(values) do wants[i] = tonumber(v) end
  table.sort(wants)
  local left, count = cap, #wants
  for _, w in ipairs(wants) do
    local level = math.floor(left / count)
    if w > level then
      if my_want < level then return my_want end
      return level
    end
    left = left - w
    count = count - 1
  end
  if #wants == 0 then return cap end
  return my_want + math.floor(left / #wants)
end

-- One dimension (slots or bytes): returns grant, target, what the others hold.
local function slice(held_key, wants_key, cap, keep, want)
  if cap < 0 then
    redis.call('HDEL', held_key, gate)
    redis.call('HDEL', wants_key, gate)
    return -1, -1, 0
  end
  local others = 0
  local held = redis.call('HGETALL', held_key)
  for i = 1, #held, 2 do
    if held[i] ~= gate then others = others + tonumber(held[i + 1]) end
  end
  if want > 0 then redis.call('HSET', wants_key, gate, num(want)) else redis.call('HDEL', wants_key, gate) end
  local target = fair_part(wants_key, cap, want)
  local grant = want
  if grant > target then grant = target end
  if grant > cap - others then grant = cap - others end
  if grant < keep then grant = keep end
  if grant < 0 then grant = 0 end
  if grant > 0 then redis.call('HSET', held_key, gate, num(grant)) else redis.call('HDEL', held_key, gate) end
  return grant, target, others
end

local slots, slots_target, slots_others =
  slice(KEYS[1], KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[9]), tonumber(ARGV[10]))
local bytes, bytes_target, bytes_others =
  slice(KEYS[3], KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[11]), tonumber(ARGV[12]))
local keep_ms = ARGV[17]
-- A gate that holds or wants something is a holder until its slice expires.
if slots > 0 or bytes > 0 or tonumber(ARGV[10]) > 0 or tonumber(ARGV[12]) > 0 then
  redis.call('ZADD', KEYS[5], ARGV[3], gate)
else
  redis.call('ZREM', KEYS[5], gate)
end
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], keep_ms) end

local tokens, rate_wait = -1, 0
local interval = tonumber(ARGV[6])
if interval >= 0 then
  tokens = 0
  if interval == 0 then
    rate_wait = -1
  else
    local tolerance = tonumber(ARGV[7])
    local tat = tonumber(redis.call('GET', KEYS[6]) or '0') - tonumber(ARGV[13]) * interval
    if tat < now then tat = now end
    local gap = tat - now
    if gap <= tolerance then
      local free = math.floor((tolerance - gap) / interval) + 1
      tokens = tonumber(ARGV[14])
      if tokens > free then tokens = free end
      tat = tat + tokens * interval
      gap = tat - now
    end
    if gap > tolerance then rate_wait = gap - tolerance end
    redis.call('SET', KEYS[6], num(tat), 'PX', num(math.floor(gap / 1000) + 1000))
  end
end

local day_grant, day_used = -1, 0
local daily = tonumber(ARGV[8])
if daily >= 0 then
  local used = tonumber(redis.call('GET', KEYS[7]) or '0') - tonumber(ARGV[15])
  if used < 0 then used = 0 end
  local free = daily - used
  if free < 0 then free = 0 end
  day_grant = tonumber(ARGV[16])
  if day_grant > free then day_grant = free end
  day_used = used + day_grant
  redis.call('SET', KEYS[7], num(day_used), 'EX', 172800)
end

return {slots, slots_target, slots_others, bytes, bytes_target, bytes_others, tokens, rate_wait, day_grant, day_used}
"""

NO_LIMIT = -1


class SliceRequest:
    """What one gate asks for one client: what it keeps, wants, and gives back."""

    __slots__ = (
        "client_id",
        "keys",
        "limits",
        "keep_slots",
        "want_slots",
        "keep_bytes",
        "want_bytes",
        "return_tokens",
        "want_tokens",
        "return_day_bytes",
        "want_day_bytes",
        "day_index",
    )

    def __init__(self, client_id: str, keys: tuple[str, ...], limits: Any, day_index: int) -> None:
        self.client_id = client_id
        self.keys = keys
        self.limits = limits
        self.day_index = day_index
        self.keep_slots = self.want_slots = self.keep_bytes = self.want_bytes = 0
        self.return_tokens = self.want_tokens = self.return_day_bytes = self.want_day_bytes = 0


class SliceGrant:
    """The coordinator's answer; -1 means the limit is not set (nothing to hold)."""

    __slots__ = (
        "slots",
        "slots_target",
        "slots_others",
        "bytes",
        "bytes_target",
        "bytes_others",
        "tokens",
        "rate_wait_us",
        "day_bytes",
        "day_used_bytes",
    )

    def __init__(self, reply: list[Any]) -> None:
        (
            self.slots,
            self.slots_target,
            self.slots_others,
            self.bytes,
            self.bytes_target,
            self.bytes_others,
            self.tokens,
            self.rate_wait_us,
            self.day_bytes,
            self.day_used_bytes,
        ) = (int(value) for value in reply)


# Lua numbers are doubles: integers are exact up to 2^53 (9 PB as bytes, far above any
# real limit). Larger limits and wants are sent as 2^53, so every reply stays exact.
LUA_EXACT_MAX = 2**53


def _arg(limit: int | None) -> int:
    return NO_LIMIT if limit is None else min(limit, LUA_EXACT_MAX)


class BudgetCoordinator:
    """The Redis side of leased budgets. Raises redis errors; the gate decides what to do."""

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        client: Any = None,
        key_prefix: str = "upload_gate",
        timeout_seconds: float = 0.25,
    ) -> None:
        client, self.errors = fail_fast_client(redis_url, client, timeout_seconds)
        self.client = client
        self.key_prefix = key_prefix
        self._lease = client.register_script(LEASE_LUA)
        self.calls = 0  # script calls made (the bench reports calls per 1,000 decisions)

    def client_keys(self, client_id: str) -> tuple[str, ...]:
        """(slots, slots_want, bytes, bytes_want, holders, tat, day-key prefix) of a client."""
        base = f"{self.key_prefix}:budget:{{{client_id}}}"
        suffixes = (":slots", ":slots_want", ":bytes", ":bytes_want", ":holders", ":tat", ":day:")
        return tuple(base + suffix for suffix in suffixes)

    def lease(self, gate_id: str, requests: list[SliceRequest], *, wall_us: int, slice_ttl_us: int) -> list[SliceGrant]:
        """One script call per request, pipelined (one round trip for all of them)."""
        pipe = self.client.pipeline(transaction=False)
        keep_ms = slice_ttl_us // 1000 + 60_000
        for request in requests:
            limits = request.limits
            keys = request.keys
            interval = NO_LIMIT if limits.interval_us is None else limits.interval_us
            args = (
                gate_id,
                wall_us,
                wall_us + slice_ttl_us,
                _arg(limits.max_concurrent_uploads),
                _arg(limits.max_bytes_in_flight),
                interval,
                min(limits.tolerance_us, LUA_EXACT_MAX),
                _arg(limits.daily_upload_bytes),
                request.keep_slots,
                _arg(request.want_slots),
                request.keep_bytes,
                _arg(request.want_bytes),
                _arg(request.return_tokens),
                _arg(request.want_tokens),
                _arg(request.return_day_bytes),
                _arg(request.want_day_bytes),
                keep_ms,
            )
            self._lease(keys=(*keys[:6], keys[6] + str(request.day_index)), args=args, client=pipe)
        replies = pipe.execute()
        self.calls += len(requests)
        return [SliceGrant(reply) for reply in replies]

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a dead connection must not raise further
            pass
