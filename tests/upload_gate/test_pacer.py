"""The SDK pacer (upload_gate/pacer.py, docs/sdk-pacing.md): its decisions on a fake clock,
and the threaded driver around a fake upload function."""

from __future__ import annotations

import threading
import urllib.error
from email.message import Message

import pytest

from upload_gate.headers import parse_quota_items
from upload_gate.pacer import Pacer, PacerCore, PacerSettings, UploadRejected, retry_after_seconds

GATE_429 = {
    "Retry-After": "5",
    "RateLimit-Policy": '"inflight";q=4;qu="concurrent-requests"',
    "RateLimit": '"inflight";r=0',
}


def start_all(core: PacerCore, now: float) -> list:
    started = []
    while (entry := core.next_start(now)) is not None:
        started.append(entry)
    return started


def room(remaining: int, quota: int = 1000) -> dict:
    return {
        "RateLimit-Policy": f'"inflight";q={quota};qu="concurrent-requests"',
        "RateLimit": f'"inflight";r={remaining}',
    }


def test_the_gates_fields_read_back_as_they_were_written():
    policy = parse_quota_items('"rpm";q=60;w=60, "inflight";q=3;qu="concurrent-requests"')
    assert policy == {"rpm": {"q": 60, "w": 60}, "inflight": {"q": 3, "qu": "concurrent-requests"}}
    assert parse_quota_items('"rpm";r=0;t=2, bogus, "inflight";r=1') == {"rpm": {"r": 0, "t": 2}, "inflight": {"r": 1}}
    assert parse_quota_items(None) == {}


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", wall_seconds=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_it_starts_small_and_grows_while_admitted():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=2, max_concurrency=6))
    first = start_all(core, 0.0)
    assert len(first) == 2
    for entry in first:
        core.admitted(entry, 0.1, room(100))
    assert len(start_all(core, 0.1)) == 2  # 4 at once now
    for entry in list(core.in_flight.values()):
        core.succeeded(entry, 0.2, room(100))
    assert core.limit == 6 and len(start_all(core, 0.2)) == 6  # never above max_concurrency


def test_concurrency_shrinks_to_what_ratelimit_says_remains():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=8))
    started = start_all(core, 0.0)
    for entry in started[:7]:
        core.admitted(entry, 0.1, room(100))
    core.admitted(started[7], 0.1, room(1))  # 8 admitted, the server has room for 1 more
    assert core.limit == 9
    ninth = core.next_start(0.1)
    core.admitted(ninth, 0.2, room(0))
    assert core.limit == 9 and core.next_start(0.2) is None
    core.succeeded(started[0], 0.3)
    assert core.next_start(0.3) is not None and core.next_start(0.3) is None


def test_room_is_counted_against_the_uploads_whose_admission_is_known():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=4))
    first, *others = start_all(core, 0.0)
    # The server counted only `first` when it said 2 remain; the 3 others still wait for their
    # answer and will take that room: nothing more may start.
    core.admitted(first, 0.1, room(2))
    assert core.limit == 3 and core.next_start(0.1) is None


def test_an_ended_upload_still_counted_does_not_lift_the_pacer_above_the_one_servers_quota():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=4))
    started = start_all(core, 0.0)
    for entry, remaining in zip(started, (3, 2, 1, 0)):
        core.admitted(entry, 0.1, room(remaining, quota=4))
    core.succeeded(started[0], 0.2)
    fifth = core.next_start(0.2)
    # The server released started[1] too, but its answer is still on the way: 4 counted here,
    # the server counts 3 of ours and says 1 is left. The quota, not 4 + 1, is the ceiling.
    core.admitted(fifth, 0.3, room(1, quota=4))
    assert core.limit == 4 and core.next_start(0.3) is None


def test_uploads_that_ended_together_never_lift_the_pacer_above_the_one_servers_quota():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=4))
    first = start_all(core, 0.0)
    for entry, remaining in zip(first, (3, 2, 1, 0)):
        core.admitted(entry, 0.01, room(remaining, quota=4))
    # All four end together at the server. The pacer learns of one end at a time; each next
    # upload's presign answer is counted by a server that has already released all four.
    now = 1.0
    for counted, ended in enumerate(first, start=1):
        core.succeeded(ended, now)
        [following] = start_all(core, now)
        core.admitted(following, now + 0.002, room(4 - counted, quota=4))
        assert core.limit <= 4 and len(core.in_flight) <= 4
        now += 0.003


def test_uploads_spread_over_several_servers_are_held_to_one_servers_quota_only_until_the_spread_lasts():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=8))
    started = start_all(core, 0.0)
    for entry in started:  # two servers of quota 4 each: each counts about half of ours
        core.admitted(entry, 0.1, room(2, quota=4))
    assert core.limit == 4  # so far it could be answers on their way from one server
    for entry in started[:5]:
        core.succeeded(entry, 1.15)
    [following] = start_all(core, 1.15)
    core.admitted(following, 1.2, room(2, quota=4))  # the gap has lasted over a second
    assert core.limit == 5  # above one server's quota, and growing
    assert len(start_all(core, 1.2)) == 1


def test_an_answer_that_says_the_server_is_full_never_raises_the_concurrency():
    core = PacerCore(range(50), PacerSettings(initial_concurrency=4))
    first, second, third, fourth = start_all(core, 0.0)
    core.admitted(first, 0.1, room(0))  # full: another importer of the partner holds the rest
    assert core.limit == 1
    for entry in (second, third, fourth):
        core.admitted(entry, 0.2, room(0))
        assert core.limit == 1
    for entry in (first, second, third, fourth):
        core.succeeded(entry, 0.3)
    again = core.next_start(0.3)
    core.admitted(again, 0.4, room(2))  # room again: it grows
    assert core.limit == 2


def test_a_429_makes_only_the_rejected_item_wait_its_retry_after():
    core = PacerCore(["a", "b", "c", "d"], PacerSettings(initial_concurrency=2))
    a, b = start_all(core, 0.0)
    core.admitted(b, 0.5, room(2))
    core.rejected(a, 1.0, 429, {**GATE_429, "RateLimit": '"inflight";r=1'})
    # b is still in flight and the server has room for one: c starts, a waits until 6.0.
    assert [e.item for e in start_all(core, 1.0)] == ["c"]
    core.succeeded(b, 2.0)
    assert [e.item for e in start_all(core, 2.0)] == ["d"]
    assert core.wake_at(2.0) is None  # c and d fill the 2 places: only an end frees one
    assert core.next_start(5.9) is None
    core.succeeded(core.in_flight[2], 5.9)
    assert core.next_start(5.9) is None and core.next_start(6.0).item == "a"
    assert core.progress(6.0).throttled == 1


def test_a_pause_holds_everything_until_its_retry_after():
    core = PacerCore(range(10), PacerSettings(initial_concurrency=3))
    first, second, third = start_all(core, 0.0)
    core.rejected(first, 1.0, 503, {"Retry-After": "30"})
    core.succeeded(second, 2.0)
    assert core.next_start(2.0) is None and core.wake_at(2.0) == 31.0
    progress = core.progress(2.0)
    assert progress.held_for_seconds == 29.0 and progress.in_flight == 1 and progress.waiting == 8
    assert core.next_start(31.0).item == 0  # the paused item keeps its place at the front


def test_a_reduced_capacity_503_is_a_quota_not_a_pause():
    core = PacerCore(range(10), PacerSettings(initial_concurrency=3))
    first, second, third = start_all(core, 0.0)
    core.admitted(second, 0.5, room(5))
    core.admitted(third, 0.5, room(5))
    core.rejected(first, 1.0, 503, {**GATE_429, "RateLimit": '"inflight";r=1'})
    assert core.hold_until == 0.0 and core.limit == 3
    core.succeeded(second, 1.5)
    assert core.next_start(1.5).item == 3


def test_an_exhausted_rate_spaces_the_next_starts_by_one_interval():
    core = PacerCore(range(10), PacerSettings(initial_concurrency=4))
    entry = core.next_start(0.0)
    core.admitted(entry, 0.0, {"RateLimit-Policy": '"rpm";q=120;w=60', "RateLimit": '"rpm";r=0;t=1'})
    assert core.next_start(0.4) is None and core.wake_at(0.4) == 0.5
    assert core.next_start(0.5) is not None


def test_timeouts_are_retried_with_jittered_backoff_and_halve_the_concurrency():
    core = PacerCore(["a"] + list(range(9)), PacerSettings(initial_concurrency=4, max_attempts=3), random=lambda: 1.0)
    a = start_all(core, 0.0)[0]
    assert core.transient_error(a, 10.0, "TimeoutError") is True
    assert core.limit == 2 and a.not_before == 11.0  # 1 s × (0.5 + 0.5 × u), u = 1
    start_all(core, 11.0)
    assert a.index not in core.in_flight  # 3 still in flight, limit 2
    core2 = PacerCore(["a"], PacerSettings(max_attempts=3), random=lambda: 0.0)
    for attempt in range(3):
        entry = core2.next_start(100.0 * attempt)
        retried = core2.transient_error(entry, 100.0 * attempt)
    assert retried is False and core2.finished and "3 attempts in a row" in core2.failed[0][1]


def test_a_4xx_that_will_not_change_fails_the_item_at_once():
    core = PacerCore(["too-big", "ok"])
    big, ok = start_all(core, 0.0)
    core.rejected(big, 0.1, 413)
    core.succeeded(ok, 0.2)
    assert core.finished and [e.item for e, _ in core.failed] == ["too-big"] and core.retries == 0


def test_the_estimate_is_items_left_over_the_recent_rate_plus_the_pause():
    core = PacerCore(range(12), PacerSettings(initial_concurrency=2, max_concurrency=2))
    assert core.progress(0.0).eta_seconds is None
    for second in range(1, 3):
        for entry in start_all(core, float(second)):
            core.succeeded(entry, float(second))
    # 4 done in 1 s between the first and the last completion: 3 per second, 8 left.
    assert core.progress(2.0).eta_seconds == pytest.approx(8 / 3)
    entry = core.next_start(2.0)
    core.rejected(entry, 2.0, 503, {"Retry-After": "10"})
    assert core.progress(2.0).eta_seconds == pytest.approx(10 + 8 / 3)


# -- the threaded driver ------------------------------------------------------------------


class FakeServer:
    """An upload endpoint with room for `capacity` uploads at once, answering as the gate."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_seen = 0
        self.stored: list = []
        self.release = threading.Event()
        self.release.set()

    def upload(self, item, attempt):
        with self.lock:
            if self.in_flight >= self.capacity:
                raise UploadRejected(429, {"Retry-After": "0", "RateLimit": '"inflight";r=0'})
            self.in_flight += 1
            self.max_seen = max(self.max_seen, self.in_flight)
            remaining = self.capacity - self.in_flight
        attempt.admitted({"RateLimit": f'"inflight";r={remaining}'})
        self.release.wait(5)
        threading.Event().wait(0.005)  # an upload takes a moment: the others start meanwhile
        with self.lock:
            self.in_flight -= 1
            self.stored.append(item)
        return f"stored {item}"


def test_every_item_is_uploaded_once_and_never_above_the_servers_room():
    server = FakeServer(capacity=3)
    progress = []
    result = Pacer(server.upload, max_concurrency=8).run(range(60), on_progress=progress.append)
    assert sorted(server.stored) == list(range(60)) and server.max_seen == 3  # grew to the room there is
    # RateLimit keeps it within the room: a pacer that ignored it would be refused over and over.
    assert result.progress.throttled <= 3, result.progress
    assert len(result.done) == 60 and dict(result.done)[0] == "stored 0" and not result.failed
    assert result.progress.done == 60 and result.progress.eta_seconds == 0.0
    assert progress[-1].done == 60 and max(p.concurrency for p in progress) <= 8


def test_network_errors_are_retried_and_http_errors_read_from_urllib():
    calls = {"flaky": 0}

    def upload(item, attempt):
        if item == "flaky" and calls["flaky"] < 2:
            calls["flaky"] += 1
            raise ConnectionResetError("reset by peer")
        if item == "forbidden":
            raise urllib.error.HTTPError("http://api/presign", 403, "Forbidden", Message(), None)
        return item

    pacer = Pacer(upload, backoff_base_seconds=0.001)
    result = pacer.run(["flaky", "forbidden", "fine"])
    assert sorted(item for item, _ in result.done) == ["fine", "flaky"]
    assert result.failed == [("forbidden", "HTTP 403")] and result.progress.retries == 2


def test_a_bug_in_the_upload_function_fails_its_item_without_retrying():
    result = Pacer(lambda item, attempt: 1 / item).run([0, 1])
    assert [item for item, _ in result.failed] == [0] and "ZeroDivisionError" in result.failed[0][1]


def test_cancelling_reports_the_items_not_started_and_lets_those_in_flight_end():
    server = FakeServer(capacity=100)
    server.release.clear()
    pacer = Pacer(server.upload, initial_concurrency=2, max_concurrency=2)
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", pacer.run(range(10))))
    runner.start()
    while server.in_flight < 2:
        threading.Event().wait(0.01)
    pacer.cancel()
    server.release.set()
    runner.join(10)
    result = outcome["result"]
    assert sorted(server.stored) == [0, 1] and len(result.done) == 2
    assert sorted(result.cancelled) == list(range(2, 10))
