"""Fleet-wide limits: three gates against one table, in share mode and in Redis mode."""

from __future__ import annotations

import itertools

import pytest
import redis

from tests.factories import create_sqlite_table, insert_sqlite_row
from upload_gate import SqliteSource


@pytest.fixture
def fleet_table(tmp_path):
    """One shared table (a SQLite file) that every gate of the fleet reads."""
    db = tmp_path / "shared.sqlite3"
    create_sqlite_table(db)

    def publish(**limits):
        limits.setdefault("live_server_count", 3)
        insert_sqlite_row(db, client_id="*", **limits)
        return db

    return publish


@pytest.fixture
def fleet(make_gate):
    """fleet(db, **kwargs) -> three gates (servers s1, s2, s3) reading the same table."""

    def build(db, **kwargs):
        return [make_gate(source=SqliteSource(db), server_id=f"s{i}", **kwargs) for i in (1, 2, 3)]

    return build


def admit_round_robin(gates, attempts: int, size: int = 1, client: str = "partner"):
    decisions = [gate.admit(client, size) for gate, _ in zip(itertools.cycle(gates), range(attempts))]
    return [d for d in decisions if d.admitted], [d for d in decisions if not d.admitted]


def test_share_mode_holds_a_fleet_wide_cap_that_divides_evenly(fleet_table, fleet):
    gates = fleet(fleet_table(max_concurrent_uploads=9))
    admitted, _ = admit_round_robin(gates, 30)
    assert len(admitted) == 9


def test_share_mode_rounds_each_share_up_so_the_fleet_admits_at_most_servers_times_share(fleet_table, fleet):
    gates = fleet(fleet_table(max_concurrent_uploads=10, max_bytes_in_flight=1000, daily_upload_bytes=30))
    admitted, _ = admit_round_robin(gates, 30, size=1)
    assert len(admitted) == 3 * 4  # ceil(10 / 3) = 4 per server
    assert all(gate.client_config("partner")["server_share"]["max_bytes_in_flight"] == 334 for gate in gates)


def test_share_mode_holds_the_fleet_wide_burst(fleet_table, fleet):
    gates = fleet(fleet_table(requests_per_minute=60, burst=6))
    admitted, rejected = admit_round_robin(gates, 20)
    assert len(admitted) == 6 and all(d.limit == "requests_per_minute" for d in rejected)


def test_redis_mode_holds_exact_fleet_wide_caps(fleet_table, fleet, redis_server, redis_prefix):
    gates = fleet(
        fleet_table(max_concurrent_uploads=10, max_bytes_in_flight=1000),
        redis_url=redis_server.url,
        redis_key_prefix=redis_prefix,
    )
    admitted, rejected = admit_round_robin(gates, 30)
    assert len(admitted) == 10  # exactly the fleet-wide limit, not 3 x 4
    assert {d.limit for d in rejected} == {"max_concurrent_uploads"}
    assert all(gate.mode == "redis" for gate in gates)
    gates[0].release(admitted[0].lease)
    assert gates[2].admit("partner", 1).admitted  # a slot freed on s1 is usable on s3


def test_redis_mode_holds_exact_fleet_wide_bytes_daily_bytes_and_burst(fleet_table, fleet, redis_server, redis_prefix):
    gates = fleet(
        fleet_table(requests_per_minute=60, burst=7, max_bytes_in_flight=500, daily_upload_bytes=800),
        redis_url=redis_server.url,
        redis_key_prefix=redis_prefix,
    )
    admitted, rejected = admit_round_robin(gates, 12, size=100)
    assert len(admitted) == 5 and rejected[0].limit == "max_bytes_in_flight"
    for decision, gate in zip(admitted, itertools.cycle(gates)):
        gate.release(decision.lease)
    admitted, rejected = admit_round_robin(gates, 6, size=100)
    assert len(admitted) == 2  # the burst of 7 is used up by 5 + 2 admitted requests
    assert rejected[0].limit == "requests_per_minute"
    headers = admitted[-1].headers()
    assert headers["RateLimit-Policy"].startswith('"rpm";q=60;w=60')  # fleet-wide values, not shares
    assert '"daily-bytes";r=100' in headers["RateLimit"]


def test_a_crashed_servers_leases_expire_in_redis(fleet_table, fleet, redis_server, redis_prefix, clock):
    gates = fleet(
        fleet_table(max_concurrent_uploads=2),
        redis_url=redis_server.url,
        redis_key_prefix=redis_prefix,
        lease_timeout_seconds=60,
    )
    assert gates[0].admit("partner", 1).admitted and gates[0].admit("partner", 1).admitted
    gates[0].close()  # s1 crashes: its leases are never released
    assert not gates[1].admit("partner", 1).admitted
    clock.advance(60)
    assert gates[1].admit("partner", 1).admitted and gates[2].admit("partner", 1).admitted


def test_each_admit_and_each_release_is_one_evalsha(fleet_table, fleet, redis_server, redis_prefix):
    gates = fleet(fleet_table(max_concurrent_uploads=50), redis_url=redis_server.url, redis_key_prefix=redis_prefix)
    client = redis.Redis.from_url(redis_server.url)

    def evalsha_calls() -> int:
        return client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)

    gates[0].release(gates[0].admit("warm-up", 1).lease)  # loads both scripts once
    before = evalsha_calls()
    for gate in gates:
        gate.release(gate.admit("partner", 1).lease)
    assert evalsha_calls() - before == 6


def test_redis_mode_falls_back_to_shares_and_returns_when_redis_is_back(
    fleet_table, fleet, own_redis_server, redis_prefix, clock
):
    gates = fleet(fleet_table(max_concurrent_uploads=9), redis_url=own_redis_server.url, redis_key_prefix=redis_prefix)
    before_outage, _ = admit_round_robin(gates, 3)  # one upload per server, counted in Redis
    own_redis_server.stop()
    # Redis is gone: each server enforces its share, ceil(9 / 3) = 3, counting its own uploads.
    during_outage, rejected = admit_round_robin(gates, 30)
    assert len(during_outage) == 3 * (3 - 1) and rejected[0].limit == "max_concurrent_uploads"
    assert all(gate.mode == "share (redis unavailable)" for gate in gates)
    assert all(gate.snapshot_counters(reset=False)["uploads_in_flight"] == 3 for gate in gates)
    own_redis_server.start()
    assert gates[0].admit("partner", 1).limit == "max_concurrent_uploads"  # within the backoff: still local
    clock.advance(1)
    # The restarted Redis forgot everything. Before its first decision back, each server
    # re-registers its uploads in flight; once all three are back the count is 9 of 9.
    for gate in gates:
        assert gate.admit("another-client", 1).admitted and gate.mode == "redis"
    after_outage, rejected = admit_round_robin(gates, 6)
    assert after_outage == [] and {d.limit for d in rejected} == {"max_concurrent_uploads"}
    assert all(gate.mode == "redis" for gate in gates)
    gates[1].release(during_outage[1].lease)  # admitted locally on s2, released in Redis too
    gates[0].release(before_outage[0].lease)
    assert len(admit_round_robin(gates, 6)[0]) == 2


class FlakyNetworkRedis(redis.Redis):
    """A real Redis client whose network to a real (still running) Redis can be cut."""

    cut = False

    def evalsha(self, *args, **kwargs):
        if self.cut:
            raise redis.exceptions.ConnectionError("network cut by the test")
        return super().evalsha(*args, **kwargs)


def test_releases_that_missed_redis_are_replayed_when_it_returns(
    fleet_table, make_gate, redis_server, redis_prefix, clock
):
    db = fleet_table(max_concurrent_uploads=1)
    flaky = FlakyNetworkRedis.from_url(redis_server.url)
    s1 = make_gate(source=SqliteSource(db), server_id="s1", redis_client=flaky, redis_key_prefix=redis_prefix)
    s2 = make_gate(source=SqliteSource(db), server_id="s2", redis_url=redis_server.url, redis_key_prefix=redis_prefix)
    held = s1.admit("partner", 1)
    assert held.admitted and not s2.admit("partner", 1).admitted
    flaky.cut = True
    assert s1.release(held.lease) is True  # ends locally; the Redis release waits in a queue
    assert s2.admit("partner", 1).limit == "max_concurrent_uploads"  # Redis still holds it
    flaky.cut = False
    clock.advance(1)
    assert s1.admit("other-client", 1).admitted  # s1 is back: the queued release is replayed first
    assert s1.mode == "redis"
    assert s2.admit("partner", 1).admitted
