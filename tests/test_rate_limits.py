"""The fixed-window counters behind the questionnaire pages' rate limits, and the growing delays
after failed sign-ins: in this process (with threads) and shared through Redis, with the clock
injected."""
from __future__ import annotations

import logging

import threading
import uuid

import pytest

from reminders.web.rate_limits import Backoff, Limit, Limiter, Throttle
from tests.conftest import REDIS_URL


class FakeTime:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def fresh(count: int = 3, seconds: int = 60) -> Limit:
    return Limit(f"test-{uuid.uuid4().hex[:8]}", count, seconds)


def test_the_request_past_the_limit_waits_until_the_window_ends():
    clock = FakeTime(1_800_000_015.0)  # 15 s into a minute
    limiter, limit = Limiter(clock=clock), fresh(3, 60)
    assert [limiter.hit(limit, "a") for _ in range(4)] == [None, None, None, 45]
    assert limiter.hit(limit, "b") is None  # each key counts alone
    clock.now += 44.5
    assert limiter.hit(limit, "a") == 1  # never "0 seconds"
    clock.now += 0.5
    assert limiter.hit(limit, "a") is None


def test_waiting_asks_without_counting():
    clock = FakeTime(1_800_000_000.0)
    limiter, limit = Limiter(clock=clock), fresh(2, 600)
    assert limiter.waiting(limit, "ip") is None
    limiter.hit(limit, "ip")
    assert limiter.waiting(limit, "ip") is None and limiter.waiting(limit, "ip") is None
    limiter.hit(limit, "ip")
    assert limiter.waiting(limit, "ip") == 600


def test_threads_hitting_at_once_are_each_counted():
    limiter, limit = Limiter(clock=lambda: 1_800_000_000.0), fresh(500, 60)
    answers: list[int | None] = []
    lock = threading.Lock()

    def tap():
        for _ in range(100):
            outcome = limiter.hit(limit, "token")
            with lock:
                answers.append(outcome)

    threads = [threading.Thread(target=tap) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(None) == 500 and len(answers) == 800


def test_old_windows_are_forgotten():
    clock = FakeTime(1_800_000_000.0)
    limiter, limit = Limiter(clock=clock), fresh(1, 60)
    for n in range(50):
        limiter.hit(limit, f"key{n}")
    clock.now += 120
    limiter.hit(limit, "new")
    assert len(limiter.local._counts) == 1


@pytest.mark.redis
def test_two_web_processes_share_the_count_through_redis():
    clock = FakeTime(1_800_000_000.0)
    limit = fresh(3, 60)
    first, second = Limiter(REDIS_URL, clock=clock), Limiter(REDIS_URL, clock=clock)
    assert [first.hit(limit, "t"), second.hit(limit, "t"), first.hit(limit, "t")] == [None, None, None]
    assert second.hit(limit, "t") == 60
    assert first.waiting(limit, "t") == 60
    assert first.local._counts == {}  # nothing was counted in the process itself
    ttl = first.shared._client.ttl(f"{Limiter.PREFIX}:{limit.name}:t:{int(clock.now // 60)}")
    assert 0 < ttl <= 61  # the key goes away with its window


def test_a_redis_that_does_not_answer_falls_back_to_counting_here(caplog):
    limiter, limit = Limiter("redis://127.0.0.1:1/0", clock=lambda: 1_800_000_000.0), fresh(1, 60)
    # (another test in the same worker may have set the log levels, as the CLI does)
    with caplog.at_level(logging.WARNING, logger="reminders.web.rate_limits"):
        assert limiter.hit(limit, "t") is None
        assert limiter.hit(limit, "t") == 60
    assert "counting in this process" in caplog.text


def backoff() -> Backoff:
    return Backoff(f"test-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=pytest.mark.redis)], ids=["here", "redis"])
def test_failures_past_five_make_the_next_attempt_wait_twice_as_long_each_time(shared):
    throttle, policy, now = Throttle(REDIS_URL if shared else ""), backoff(), 1_800_000_000.0
    assert [throttle.take(policy, now, ["k"]).failures for _ in range(5)] == [(1,), (2,), (3,), (4,), (5,)]
    waits = []
    for _ in range(8):
        waits.append(throttle.take(policy, now, ["k"]).wait)
        assert throttle.take(policy, now + waits[-1] - 0.1, ["k"]).wait == 1  # not counted while waiting
        now += waits[-1]
        assert throttle.take(policy, now, ["k"]).wait is None
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    throttle.forgive(policy, clear=["k"])
    assert throttle.take(policy, now, ["k"]).failures == (1,)


@pytest.mark.parametrize("shared", [False, pytest.param(True, marks=pytest.mark.redis)], ids=["here", "redis"])
def test_a_key_that_depends_on_another_holds_back_only_while_that_one_has_failures(shared):
    throttle, policy, now = Throttle(REDIS_URL if shared else ""), backoff(), 1_800_000_000.0
    for n in range(6):
        throttle.take(policy, now, [f"address{n}", "account", f"account:address{n}"],
                      only_after_failures={"account": f"account:address{n}"})
    fresh = throttle.take(policy, now, ["address9", "account", "account:address9"],
                          only_after_failures={"account": "account:address9"})
    assert fresh.wait is None and fresh.failures == (1, 7, 1)
    again = throttle.take(policy, now, ["address9", "account", "account:address9"],
                          only_after_failures={"account": "account:address9"})
    assert again.wait == 4
    throttle.forgive(policy, ["address9", "account"], clear=["account:address9"])  # it was the right password
    assert throttle.take(policy, now, ["address9", "account", "account:address9"],
                         only_after_failures={"account": "account:address9"}).failures == (1, 7, 1)


def test_threads_guessing_at_once_get_no_more_tries_than_one_after_another():
    throttle, policy = Throttle(), backoff()
    allowed: list[int] = []
    lock = threading.Lock()

    def guess():
        for _ in range(50):
            if throttle.take(policy, 1_800_000_000.0, ["address"]).wait is None:
                with lock:
                    allowed.append(1)

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == policy.free


def test_a_redis_that_does_not_answer_counts_failures_here_instead(caplog):
    throttle, policy = Throttle("redis://127.0.0.1:1/0"), backoff()
    with caplog.at_level(logging.WARNING, logger="reminders.web.rate_limits"):
        for _ in range(5):
            assert throttle.take(policy, 1_800_000_000.0, ["k"]).wait is None
        assert throttle.take(policy, 1_800_000_000.0, ["k"]).wait == 1
    assert "counting in this process" in caplog.text
