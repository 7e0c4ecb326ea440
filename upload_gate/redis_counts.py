"""Exact fleet-wide counting in Redis: one atomic Lua script per admit, one per release.

Keys of one client (the {client id} hash tag keeps them in one Redis Cluster slot):
    <prefix>:{<client>}:tat        GCRA theoretical arrival time, wall microseconds
    <prefix>:{<client>}:leases     sorted set: lease member -> deadline (wall microseconds)
    <prefix>:{<client>}:sizes      hash: lease member -> declared size in bytes
    <prefix>:{<client>}:bytes      sum of the sizes of live leases
    <prefix>:{<client>}:day:<n>    bytes admitted on UTC day n (expires after two days)

Leases live in Redis with their deadline: the admit script drops expired ones before
counting, so the leases of a crashed server free their slots after the lease timeout.
Times are the servers' wall clocks (NTP-synchronised), passed in as arguments so the
scripts stay deterministic. The `redis` package is imported only when this is used.
"""

from __future__ import annotations

from typing import Any

from .limits import Limits

# Lua 5.1 turns numbers into strings with "%.14g": microsecond timestamps (16 digits)
# would lose precision, so every number written back goes through string.format("%.0f").
ADMIT_LUA = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local max_uploads = tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[5])
local daily = tonumber(ARGV[6])
local size = tonumber(ARGV[7])
local member = ARGV[8]
local deadline = tonumber(ARGV[9])
local busy_wait = tonumber(ARGV[10])
local to_midnight = tonumber(ARGV[11])
local rate_blocked_wait = tonumber(ARGV[12])

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #expired > 0 then
  local freed = 0
  for _, m in ipairs(expired) do
    freed = freed + tonumber(redis.call('HGET', KEYS[3], m) or '0')
    redis.call('HDEL', KEYS[3], m)
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
  redis.call('DECRBY', KEYS[4], string.format('%.0f', freed))
end

local uploads = redis.call('ZCARD', KEYS[2])
local bytes = tonumber(redis.call('GET', KEYS[4]) or '0')
local day_bytes = tonumber(redis.call('GET', KEYS[5]) or '0')
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local gap = tat - now

local limit, wait = 0, -1
local function consider(index, w)
  if w > wait then limit, wait = index, w end
end
if interval >= 0 and gap > tolerance then
  if interval == 0 then consider(1, rate_blocked_wait) else consider(1, gap - tolerance) end
end
if max_uploads >= 0 and uploads >= max_uploads then consider(2, busy_wait) end
if max_bytes >= 0 and bytes + size > max_bytes then consider(3, busy_wait) end
if daily >= 0 and day_bytes + size > daily then consider(4, to_midnight) end
if limit > 0 then
  return {0, limit, wait, gap, uploads, bytes, day_bytes, #expired}
end

if interval >= 0 then
  tat = tat + interval
  gap = tat - now
  local keep_tat_ms = string.format('%.0f', math.floor(gap / 1000) + 1000)
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', keep_tat_ms)
end
local keep_ms = string.format('%.0f', math.floor((deadline - now) / 1000) + 60000)
redis.call('ZADD', KEYS[2], string.format('%.0f', deadline), member)
redis.call('HSET', KEYS[3], member, ARGV[7])
bytes = redis.call('INCRBY', KEYS[4], ARGV[7])
redis.call('PEXPIRE', KEYS[2], keep_ms)
redis.call('PEXPIRE', KEYS[3], keep_ms)
redis.call('PEXPIRE', KEYS[4], keep_ms)
if daily >= 0 then
  day_bytes = redis.call('INCRBY', KEYS[5], ARGV[7])
  redis.call('EXPIRE', KEYS[5], 172800)
end
return {1, 0, 0, gap, uploads + 1, bytes, day_bytes, #expired}
"""

RELEASE_LUA = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local size = redis.call('HGET', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if size then redis.call('DECRBY', KEYS[3], size) end
return 1
"""

# After an outage, a server re-registers the uploads it still has in flight (admitted in
# Redis before, or locally during the outage): NX keeps a lease Redis already holds as is.
RESTORE_LUA = """
local restored = 0
for i = 2, #ARGV, 3 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
    redis.call('INCRBY', KEYS[3], ARGV[i + 2])
    restored = restored + 1
  end
end
if restored > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[1])
end
return restored
"""

# A long upload's lease gets a later deadline; XX: a lease Redis no longer holds stays gone.
RENEW_LUA = """
local changed = redis.call('ZADD', KEYS[1], 'XX', 'CH', ARGV[2], ARGV[1])
if changed == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return changed
"""

NO_LIMIT = -1


def _arg(limit: int | None) -> int:
    return NO_LIMIT if limit is None else limit


class RedisAdmitResult:
    """What the admit script answered; limit_index 1..4 follows RATE_RULES_IN_ORDER."""

    __slots__ = (
        "admitted",
        "limit_index",
        "wait_us",
        "gap_us",
        "uploads_in_flight",
        "bytes_in_flight",
        "day_bytes",
        "expired",
    )

    def __init__(self, reply: list[int]) -> None:
        (
            admitted,
            self.limit_index,
            self.wait_us,
            self.gap_us,
            self.uploads_in_flight,
            self.bytes_in_flight,
            self.day_bytes,
            self.expired,
        ) = (int(value) for value in reply)
        self.admitted = admitted == 1


def fail_fast_client(redis_url: str | None, client: Any, timeout_seconds: float) -> tuple[Any, tuple]:
    """(a Redis client, the errors that mean "Redis is away"). No retries inside the client:
    a failure must reach the gate at once, so it can fall back to shares instead of stalling
    an upload request."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    if client is None:
        client = redis.Redis.from_url(
            redis_url,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
    return client, (redis.exceptions.RedisError, OSError)


class RedisCounts:
    """The Redis side of fleet-wide mode. Raises redis errors; the gate decides what to do."""

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
        self._admit = client.register_script(ADMIT_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._restore = client.register_script(RESTORE_LUA)
        self._renew = client.register_script(RENEW_LUA)

    def client_keys(self, client_id: str) -> tuple[str, str, str, str, str]:
        """(tat, leases, sizes, bytes, day-key prefix) for a client, computed once per client."""
        base = f"{self.key_prefix}:{{{client_id}}}"
        return (base + ":tat", base + ":leases", base + ":sizes", base + ":bytes", base + ":day:")

    def admit(
        self,
        keys: tuple[str, ...],
        limits: Limits,
        *,
        wall_us: int,
        size_bytes: int,
        member: str,
        deadline_us: int,
        busy_wait_us: int,
        to_midnight_us: int,
        rate_blocked_wait_us: int,
        day_index: int,
    ) -> RedisAdmitResult:
        interval = NO_LIMIT if limits.interval_us is None else limits.interval_us
        args = (
            wall_us,
            interval,
            limits.tolerance_us,
            _arg(limits.max_concurrent_uploads),
            _arg(limits.max_bytes_in_flight),
            _arg(limits.daily_upload_bytes),
            size_bytes,
            member,
            deadline_us,
            busy_wait_us,
            to_midnight_us,
            rate_blocked_wait_us,
        )
        reply = self._admit(keys=(keys[0], keys[1], keys[2], keys[3], keys[4] + str(day_index)), args=args)
        return RedisAdmitResult(reply)

    def release(self, keys: tuple[str, ...], member: str) -> bool:
        return self._release(keys=(keys[1], keys[2], keys[3]), args=(member,)) == 1

    def renew(self, keys: tuple[str, ...], member: str, deadline_us: int, keep_ms: int) -> bool:
        """Give a lease a later deadline (wall microseconds); False if Redis no longer holds it."""
        return self._renew(keys=(keys[1], keys[2], keys[3]), args=(member, deadline_us, keep_ms)) == 1

    def restore(self, keys: tuple[str, ...], leases: list[tuple[str, int, int]], keep_ms: int) -> int:
        """Re-register (member, deadline wall us, size bytes) leases; returns how many were missing."""
        args: list[object] = [keep_ms]
        for member, deadline_us, size_bytes in leases:
            args.extend((member, deadline_us, size_bytes))
        return int(self._restore(keys=(keys[1], keys[2], keys[3]), args=args))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a dead connection must not raise further
            pass
