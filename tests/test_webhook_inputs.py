"""Webhook requests that are signed but odd: for another Twilio account, with an outbox id no
database holds, with NUL characters or fields longer than their columns. Signed the real way
(tests/fixtures/twoway.py), on SQLite and on PostgreSQL (which refuses NUL and overlong values)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from reminders.models import Appointment
from reminders.pipeline import run_pass
from tests.conftest import at, both_databases
from tests.fixtures.twoway import PHONE, answer, escalations, inbound
from tests.helpers import outbox

OTHER_ACCOUNT = "AC" + "9" * 32
REMINDER_AT = at("2026-12-09T10:00:00-05:00")


# Every test here runs on SQLite (the default) and on PostgreSQL.
settings = both_databases()


@pytest.fixture
def texted(session, two_way, fake_twilio, clock, booked):
    """Maya's 24-hour reminder went out through Twilio."""
    run_pass(two_way, REMINDER_AT)
    row = outbox(session, rule="first_induction_24h", channel="sms")[0]  # the first of its two texts
    assert row.status == "sent" and row.provider_id
    clock.now = REMINDER_AT + timedelta(minutes=1)
    return row


def status_form(sid: str, status: str, account: str) -> dict:
    return {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status, "AccountSid": account,
            "From": "+15005550006", "To": PHONE, "ApiVersion": "2010-04-01"}


# ---------------------------------------------------------------- another account

def test_a_text_signed_for_another_account_is_refused_logged_and_not_acted_on(twilio, booked, session, caplog):
    with caplog.at_level(logging.WARNING, logger="reminders.web.provider_hooks"):
        response = twilio.sms("C", AccountSid=OTHER_ACCOUNT)
    assert response.status_code == 403
    assert inbound(session) == [] and session.get(Appointment, booked.id).status == "scheduled"
    assert "AccountSid is not TWILIO_ACCOUNT_SID" in caplog.text and OTHER_ACCOUNT not in caplog.text
    assert "confirmed" in answer(twilio.sms("C"))  # the same text for our account is acted on


def test_a_text_that_names_no_account_is_refused(twilio, booked, session):
    form = twilio.sms_form("STOP")
    del form["AccountSid"]
    assert twilio.post("/twilio/sms", form).status_code == 403
    assert inbound(session) == []


def test_a_delivery_report_signed_for_another_account_changes_nothing(twilio, texted, session):
    path = f"/twilio/status?outbox_id={texted.id}"
    response = twilio.post(path, status_form(texted.provider_id, "undelivered", OTHER_ACCOUNT) | {"ErrorCode": "30006"})
    assert response.status_code == 403
    [row] = outbox(session, id=texted.id)
    assert (row.status, row.error_code) == ("sent", None)
    assert outbox(session, channel="email") == []


def test_without_an_account_sid_configured_the_signature_alone_decides(configure, two_way, clock, session, booked):
    from reminders.web import create_app
    from tests.fixtures.twoway import Twilio

    settings = configure(TWILIO_ACCOUNT_SID="")
    poster = Twilio(create_app(settings, {"TESTING": True, "CLOCK": clock}).test_client(), settings.twilio_auth_token)
    assert "confirmed" in answer(poster.sms("C", AccountSid=OTHER_ACCOUNT))


# ---------------------------------------------------------------- ids out of range

def test_a_delivery_report_with_an_outbox_id_of_24_digits_is_found_by_its_message_sid(twilio, texted, session):
    path = f"/twilio/status?outbox_id={10**23}"
    response = twilio.post(path, status_form(texted.provider_id, "delivered", twilio.account_sid))
    assert response.status_code == 204
    [row] = outbox(session, id=texted.id)
    assert row.status == "delivered"


@pytest.mark.parametrize("outbox_id", ["-1", "0", str(2**31), "99999999999999999999999", "1e9", "１"])
def test_a_delivery_report_with_an_odd_outbox_id_is_not_a_server_error(twilio, texted, session, outbox_id):
    response = twilio.post(f"/twilio/status?outbox_id={outbox_id}", status_form("SMnot-ours", "delivered", twilio.account_sid))
    assert response.status_code == 204
    [row] = outbox(session, id=texted.id)
    assert row.status == "sent"


@pytest.mark.parametrize("field, value", [
    ("MessageSid", "SM\x00" + "a" * 32), ("MessageSid", "SM" + "a" * 500), ("MessageStatus", "deliv\x00ered"),
    ("MessageStatus", "x" * 500), ("ErrorCode", "30\x00006"), ("ErrorCode", "3" * 500),
])
def test_a_delivery_report_with_a_nul_or_overlong_field_is_not_a_server_error(twilio, texted, session, field, value):
    form = status_form(texted.provider_id, "undelivered", twilio.account_sid) | {"ErrorCode": "30003", field: value}
    if field == "MessageSid":
        form["SmsSid"] = value
    response = twilio.post(f"/twilio/status?outbox_id={texted.id}", form)
    assert response.status_code == 204


# ---------------------------------------------------------------- malformed fields are kept for staff

def staff_inbox(api) -> list[dict]:
    return api("/api/v1/replies?needs_staff=true")["replies"]


def test_a_sender_number_with_a_nul_is_stored_cleaned_and_shown_to_staff(twilio, booked, session, api):
    reply = answer(twilio.sms("C", from_=PHONE[:5] + "\x00" + PHONE[5:]))
    assert reply
    [message] = inbound(session)
    assert message.from_number == PHONE and message.needs_staff
    assert message.body == "C\n[sender number was malformed]"
    [shown] = staff_inbox(api)
    assert "[sender number was malformed]" in shown["body"]


def test_a_sender_number_of_5000_characters_is_stored_cut_to_its_column_and_shown_to_staff(twilio, booked, session, api):
    assert answer(twilio.sms("Can I move my visit to Friday?", from_="+1" + "2" * 4998))
    [message] = inbound(session)
    assert len(message.from_number) == 32 and message.needs_staff and message.patient_id is None
    assert message.body.endswith("[sender number was malformed]")
    assert staff_inbox(api)[0]["body"].startswith("Can I move my visit to Friday?")


@pytest.mark.parametrize("sid, stored", [
    ("SM\x00" + "b" * 32, "SM" + "b" * 32),
    ("SM" + "c" * 500, ("SM" + "c" * 500)[:64]),
])
def test_a_message_sid_with_a_nul_or_overlong_is_stored_cleaned_and_shown_to_staff(twilio, booked, session, api, sid,
                                                                                  stored):
    form = twilio.sms_form("Running late, sorry", sid=sid)
    assert answer(twilio.post("/twilio/sms", form))
    [message] = inbound(session)
    assert message.message_sid == stored and message.needs_staff
    assert "[message id was malformed]" in message.body
    assert answer(twilio.post("/twilio/sms", form))  # a replay is still recognised, and kept once
    assert len(inbound(session)) == 1


def test_a_text_of_20000_characters_is_kept_cut_with_a_note(twilio, booked, session, api):
    assert answer(twilio.sms("a" * 20_000))
    [message] = inbound(session)
    assert message.body.startswith("a" * 10_000) and "[text cut at 10000 of 20000 characters]" in message.body
    assert message.needs_staff


def test_a_crisis_from_a_malformed_number_still_escalates_and_answers_with_the_crisis_line(
        twilio, booked, session, fake_twilio):
    reply = answer(twilio.sms("i want to die", from_="+1\x00" + "9" * 100))
    assert "988" in reply and "911" in reply
    [escalation] = escalations(session)
    [message] = inbound(session)
    assert escalation.inbound_message_id == message.id and message.classification == "crisis"
    assert "[sender number was malformed]" in message.body
