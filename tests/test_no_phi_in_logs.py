"""No patient's name, number, address or text in any log line, even when things fail.

Each failure path runs for one recognisable patient; every record the service logs (through the
project's own redacting formatter, tracebacks included) is then searched for her details.
"""
from __future__ import annotations

import io
import logging
import re
import sys

import pytest
from sqlalchemy import text

from reminders.dispatch import in_process
from reminders.logs import RedactingFormatter, configure_logging
from reminders.models import TemplateVersion
from reminders.pipeline import run_pass
from reminders.runner import MinuteScheduler
from tests.conftest import at
from tests.fixtures.twoway import Twilio
from tests.helpers import book

FIRST, LAST = "Zelda", "Quuxington"
PHONE, EMAIL = "+14155550199", "zelda.q@example.org"
BODY = "my secret words"
FORBIDDEN = (FIRST, LAST, PHONE, "4155550199", "555-0199", "zelda.q", EMAIL, BODY, "secret words")
VISIT = "2026-12-10T10:00:00-05:00"
FIRST_REMINDERS_DUE = "2026-12-07T10:00:00-05:00"


@pytest.fixture
def captured():
    """Every record, at every level, formatted as the service formats it (exc_info included)."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    configure_logging(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(RedactingFormatter())
    # The test's own SMTP server (aiosmtpd, "mail.log") runs in this process but is not the service.
    handler.addFilter(lambda record: not record.name.startswith("mail.log"))
    root.addHandler(handler)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def assert_no_phi(logged: str) -> None:
    for value in FORBIDDEN:
        assert value.lower() not in logged.lower(), f"{value!r} is in the log:\n{logged}"


def book_zelda(session, channel: str = "both"):
    visit = book(session, starts_at=VISIT, patient="zelda", appointment="z1", phone=PHONE, email=EMAIL,
                 channel=channel, first_name=FIRST)
    visit.patient.last_name = LAST
    session.commit()
    return visit


@pytest.fixture
def zelda(session):
    return book_zelda(session)


class Exploding:
    """A channel whose provider library fails and quotes the whole message back."""

    def __init__(self, name: str):
        self.name = name

    def send(self, message):
        raise RuntimeError(f"provider choked on {message.to} ({FIRST} {LAST}): {message.body}")


def test_a_send_that_raises_logs_no_patient_data(settings, sessions, zelda, captured):
    channels = {"sms": Exploding("sms"), "email": Exploding("email")}
    summary = run_pass(settings, at(FIRST_REMINDERS_DUE), sessions=sessions, channels=channels)
    assert summary["unknown"] == 2  # it may have gone: staff check, nothing is sent twice
    logged = captured.getvalue()
    assert "error after the message was handed to the provider" in logged and "RuntimeError" in logged
    assert "Traceback" in logged
    assert_no_phi(logged)


def test_an_smtp_refusal_logs_no_patient_data(configure, settings, sessions, smtp_settings, smtp_server, captured):
    two_way = configure(**smtp_settings)
    with sessions() as session:
        book_zelda(session, channel="email")
    smtp_server.reject_next("rcpt", 550, f"5.1.1 <{EMAIL}>: no mailbox for {FIRST} {LAST}", times=5)
    summary = run_pass(two_way, at(FIRST_REMINDERS_DUE), sessions=sessions)
    assert summary["failed"] == 1
    logged = captured.getvalue()
    assert "failed (permanent)" in logged
    assert_no_phi(logged)


def test_a_planner_error_logs_no_patient_data(settings, sessions, zelda, captured, monkeypatch):
    scheduler = MinuteScheduler(settings, in_process(settings, sessions))

    def failing_planner(session, rule_settings, now):
        scheduler.stop()  # one pass only
        try:  # a database error about this patient's row, then a library quoting her name
            session.execute(text("UPDATE no_such_table SET phone = :phone WHERE name = :name AND email = :email"),
                            {"phone": PHONE, "name": f"{FIRST} {LAST}", "email": EMAIL})
        except Exception as exc:
            raise ValueError(f"cannot plan for patient '{FIRST} {LAST}' <{EMAIL}>") from exc

    monkeypatch.setattr("reminders.pipeline.plan_pending", failing_planner)
    scheduler.run()
    logged = captured.getvalue()
    assert "failed; the next one will try again" in logged and "OperationalError" in logged
    assert "[parameters" not in logged or "hidden due to hide_parameters" in logged
    assert_no_phi(logged)


def test_a_template_that_fails_at_send_time_logs_no_patient_data(settings, sessions, zelda, captured):
    with sessions() as session:
        session.add(TemplateVersion(name="first_induction_72h.sms.j2", active=True, created_by="test",
                                    source="{% set by_name = {'Alex': 1} %}{{ by_name[patient.first_name] }}"))
        session.commit()
    summary = run_pass(settings, at(FIRST_REMINDERS_DUE), sessions=sessions)
    assert summary["sent"] == 2  # the default text went instead
    logged = captured.getvalue()
    assert "first_induction_72h.sms.j2" in logged and "default file was used" in logged
    assert_no_phi(logged)


def test_a_database_error_while_storing_a_text_logs_no_patient_data(configure, settings, sessions, session,
                                                                   twilio_settings, captured):
    from reminders.web import create_app

    book_zelda(session)
    two_way = configure(**twilio_settings, PUBLIC_BASE_URL="https://clinic.example.org")
    app = create_app(two_way, {"TESTING": True})
    with sessions() as broken:
        broken.execute(text("DROP TABLE inbound_messages"))
        broken.commit()
    response = Twilio(app.test_client(), two_way.twilio_auth_token).sms(BODY, from_=PHONE)
    assert response.status_code == 200 and "988" in response.text  # the patient is still answered
    logged = captured.getvalue()
    assert "could not even be stored" in logged and "OperationalError" in logged
    assert_no_phi(logged)


def test_the_formatter_masks_values_in_any_exception_text():
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError(f"bad row '{FIRST}' {PHONE} {EMAIL} DETAIL: Key (first_name, phone)=({FIRST}, {PHONE})")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed for %s", (EMAIL,), None)
        record.exc_info = sys.exc_info()
    out = formatter.format(record)
    assert "ValueError: bad row" in out and "Traceback" in out and "…@example.org" in out and "***99" in out
    assert_no_phi(out)
    assert not re.search(r"\d{7}", out)


def test_the_celery_worker_logs_through_the_same_redacting_set_up():
    from celery.signals import setup_logging

    import reminders.celery_app  # noqa: F401 - connects the worker's logging set-up

    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_reminders", False)]
    try:
        setup_logging.send(sender=None, loglevel="INFO", logfile=None, format="", colorize=False)
        ours = [h for h in root.handlers if getattr(h, "_reminders", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, RedactingFormatter)
        assert root.level == logging.INFO
        assert logging.getLogger("twilio.http_client").getEffectiveLevel() >= logging.WARNING
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


# --- What is a phone number and what is not --------------------------------------------------

LEFT_ALONE = (
    "succeeded in 0.0386s",
    "Task reminders.tasks.send_batch[3f1c2a9e-5b7d-4e2a-9c1f-0a2b3c4d5e6f] succeeded",
    "2026-12-06 20:44:31,050",
    "127.0.0.1:58583",
    # As Celery and friends write them:
    "Task reminders.tasks.send_batch[3f1c2a9e-5b7d-4e2a-9c1f-0a2b3c4d5e6f] succeeded in 0.03860012499991781s: None",
    "Task reminders.tasks.send_batch[12345678-1234-4234-8234-123456789012] received",
    "2026-12-06T20:44:31.050123+00:00",
    "2026-12-06 20:44:31,050 INFO celery.worker: sent 12 of 1500 rows in 3 rounds",
    "eta 1733517871.123, countdown 86400.5",
    "Connected to redis://127.0.0.1:6379/0, postgres on port 5432",
    "deadbeef12345678, id=1234567abc, 0x12345678",
)
MASKED = {
    "+12025550143": "***43",
    "(202) 555-0143": "***43",
    "202-555-0143": "***43",
    "202.555.0143": "***43",
    "+1 (202) 555-0143": "***43",
    "1-202-555-0143": "***43",
    "2025550143": "***43",
    "555-0143": "***43",
    "+44 (0)20 7946 0958": "***58",
    "+44 7700 900123": "***23",
}


@pytest.mark.parametrize("line", LEFT_ALONE)
def test_numbers_that_are_not_phone_numbers_are_left_alone(line):
    from reminders.logs import redact

    assert redact(line) == line


@pytest.mark.parametrize("phone", MASKED)
def test_phone_numbers_in_every_usual_shape_are_masked(phone):
    from reminders.logs import redact

    assert redact(phone) == MASKED[phone]
    last_four = re.sub(r"\D", "", phone)[-4:]
    for line in (f"to {phone}", f"to {phone}.", f"tel:{phone},", f"(Zelda, {phone})", f"sms-{phone} failed",
                 f"2026-12-06 20:44:31,050 sent to {phone} in 0.0386s"):
        expected = line.replace(phone, MASKED[phone])
        assert redact(line) == expected and last_four not in expected, line


def test_a_celery_success_line_comes_out_whole_through_the_formatter():
    formatter = RedactingFormatter("%(message)s")
    args = ("reminders.tasks.send_batch", "3f1c2a9e-5b7d-4e2a-9c1f-0a2b3c4d5e6f", 0.03860012499991781, None)
    record = logging.LogRecord("celery.app.trace", logging.INFO, __file__, 1,
                               "Task %s[%s] succeeded in %ss: %r", args, None)
    assert formatter.format(record) == ("Task reminders.tasks.send_batch[3f1c2a9e-5b7d-4e2a-9c1f-0a2b3c4d5e6f] "
                                        "succeeded in 0.03860012499991781s: None")
