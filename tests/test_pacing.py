"""Pacing per sender: the rate read from TWILIO_FROM, one bucket for every process (Redis),
urgent texts ahead of reminders, a 429's Retry-After pausing the sender. Time is injected."""
from __future__ import annotations

import os
import uuid

import pytest

from reminders.channels import DeliveryError, OutgoingMessage
from reminders.pacing import LocalBucket, Pacer, RedisBucket, SenderPaused, default_rate, rate_for

REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
REDIS_DB = 11


class Clock:
    def __init__(self, start: float = 1_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("sender, rate", [
    ("+12025550143", 1.0),  # a long code
    ("+18885550100", 3.0), ("+18335550100", 3.0),  # toll-free
    ("+18125550100", 1.0),  # 812 is Indiana, not toll-free
    ("88222", 100.0), ("123456", 100.0),  # short codes
    ("MG0123456789abcdef0123456789abcdef", 100.0),  # a Messaging Service
])
def test_the_rate_follows_the_kind_of_sender(sender, rate):
    assert default_rate(sender) == rate


def test_a_setting_overrides_the_rate_read_from_the_sender(configure):
    assert rate_for(configure(TWILIO_FROM="+12025550143", SMS_PER_SECOND="0")) == 1.0
    assert rate_for(configure(TWILIO_FROM="+12025550143", SMS_PER_SECOND="10")) == 10.0
    with pytest.raises(ValueError):
        configure(SMS_PER_SECOND="-1")


@pytest.fixture(params=["in process", "redis"])
def bucket(request):
    clock = Clock()
    if request.param == "in process":
        yield LocalBucket(clock=clock), clock
        return
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(f"{REDIS_BASE}/{REDIS_DB}")
    prefix = f"test-pace-{uuid.uuid4().hex}"
    yield RedisBucket(client, prefix=prefix, clock=clock), clock
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_one_slot_per_interval(bucket):
    bucket, clock = bucket
    assert bucket.take("+12025550143", 2.0, urgent=False) == 0
    assert bucket.take("+12025550143", 2.0, urgent=False) == pytest.approx(0.5)
    assert bucket.take("+18885550100", 2.0, urgent=False) == 0  # another sender has its own
    clock.now += 0.5
    assert bucket.take("+12025550143", 2.0, urgent=False) == 0
    clock.now += 0.1
    assert bucket.take("+12025550143", 2.0, urgent=False) > 0


def test_an_urgent_text_goes_ahead_of_the_reminders_waiting(bucket):
    bucket, clock = bucket
    sender = "+12025550143"
    assert bucket.take(sender, 1.0, urgent=False) == 0  # a reminder has this second
    clock.now += 0.5
    assert bucket.take(sender, 1.0, urgent=True) == pytest.approx(0.5)  # a crisis alert waits for the next slot
    clock.now += 0.5
    assert bucket.take(sender, 1.0, urgent=False) > 0  # a reminder asking at the same moment stands back
    assert bucket.take(sender, 1.0, urgent=True) == 0  # the alert has the slot
    assert bucket.take(sender, 1.0, urgent=False) == pytest.approx(1.0)
    clock.now += 1.0
    assert bucket.take(sender, 1.0, urgent=False) == 0  # then the reminders go on


def test_a_pause_holds_the_sender_back(bucket):
    bucket, clock = bucket
    bucket.pause("+12025550143", 30)
    assert bucket.take("+12025550143", 100.0, urgent=True) == pytest.approx(30)
    assert bucket.take("+18885550100", 100.0, urgent=False) == 0  # the other sender is not paused
    clock.now += 30
    assert bucket.take("+12025550143", 100.0, urgent=True) == 0  # the alert that waited goes first
    assert bucket.take("+12025550143", 100.0, urgent=False) == pytest.approx(0.01)


def test_the_pacer_sleeps_until_its_slot():
    clock, slept = Clock(), []

    def sleep(seconds):
        slept.append(seconds)
        clock.now += seconds

    pacer = Pacer(LocalBucket(clock=clock), 4.0, "+12025550143", sleep=sleep)
    for _ in range(5):
        pacer.wait_for_slot()
    assert slept == [pytest.approx(0.25)] * 4 and clock.now == pytest.approx(1_001.0)


def test_the_pacer_goes_on_in_process_when_redis_is_away():
    redis = pytest.importorskip("redis")
    away = RedisBucket(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2))
    pacer = Pacer(away, 1000.0, "+12025550143", sleep=lambda s: None)
    assert pacer.wait_for_slot() == 0
    assert isinstance(pacer.bucket, LocalBucket)


def test_a_paused_sender_hands_the_message_back_without_calling_twilio(configure, fake_twilio, twilio_settings):
    from reminders.channels.twilio.client import TwilioMessaging

    settings = configure(**twilio_settings, SMS_PER_SECOND="50")
    sms = TwilioMessaging(settings)
    sms._pacer = Pacer(LocalBucket(), 50.0, settings.twilio_from)
    sms._pacer.pause(120)
    with pytest.raises(DeliveryError) as paused:
        sms.send(OutgoingMessage(to="+12025550144", body="URGENT: possible crisis reply", reference="2", urgent=True))
    assert paused.value.code == "paused" and not paused.value.permanent and paused.value.retry_after > 100
    assert fake_twilio.requests == []


def test_a_message_does_not_wait_out_a_long_pause_in_its_task():
    clock, slept = Clock(), []
    pacer = Pacer(LocalBucket(clock=clock), 1.0, "+12025550143", sleep=slept.append)
    pacer.pause(300)
    with pytest.raises(SenderPaused):
        pacer.wait_for_slot()
    assert slept == []


def test_alerts_and_replies_reach_the_channel_marked_urgent(settings, sessions, session):
    from datetime import timedelta

    from reminders.channels import Receipt
    from reminders.models import OutboxMessage
    from reminders.pipeline import run_pass
    from tests.conftest import at
    from tests.helpers import book

    class Recording:
        name = "sms"

        def __init__(self):
            self.sent: list[tuple[str, bool]] = []

        def send(self, message):
            self.sent.append((message.body.split()[0], message.urgent))
            return Receipt(provider_id=f"SM{message.reference}")

    now = at("2026-12-09T10:00:00-05:00")
    book(session, starts_at="2026-12-10T10:00:00-05:00")
    session.add_all([
        OutboxMessage(dedupe_key="esc:1:alert:sms", kind="alert", rule="escalation_alert", channel="sms",
                      to_address="+12025550100", body="URGENT: possible crisis reply", planned_for=now, due_at=now),
        OutboxMessage(dedupe_key="reply:1", kind="reply", rule="reply", channel="sms", to_address="+12025550143",
                      body="Thanks, we got your message.", planned_for=now, due_at=now - timedelta(minutes=5)),
    ])
    session.commit()
    channel = Recording()
    run_pass(settings, now, sessions=sessions, channels={"sms": channel, "email": channel})
    assert channel.sent[0] == ("URGENT:", True)  # the alert first
    assert ("Thanks,", True) in channel.sent
    # The reminder and its following text (the after-visit cautions): neither is urgent.
    assert [urgent for word, urgent in channel.sent if word not in ("URGENT:", "Thanks,")] == [False, False]
