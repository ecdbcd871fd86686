"""POST /twilio/status: delivery reports move outbox rows forward only, keep Twilio's error code,
and a text that cannot arrive falls back to email (received by the SMTP server)."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from reminders.models import OutboxMessage
from reminders.pipeline import run_pass
from tests.conftest import at
from tests.helpers import book, outbox, patient
from tests.fixtures.twoway import BASE, NOW, answer

REMINDER_AT = at("2026-12-09T10:00:00-05:00")  # the 24 h reminder for the visit below


@pytest.fixture
def texted(session, two_way, fake_twilio, clock):
    """Maya's 24-hour reminder went out through Twilio; she also has an email address."""
    book(session, starts_at="2026-12-10T10:00:00-05:00", email="maya@example.org", channel="sms")
    run_pass(two_way, REMINDER_AT)
    sms, _cautions = fake_twilio.messages  # the reminder, then its second text (the after-visit cautions)
    row = outbox(session, rule="first_induction_24h", channel="sms", part=1)[0]
    assert sms["status_callback"] == f"{BASE}/twilio/status?outbox_id={row.id}"
    assert (row.status, row.provider_id, row.provider_status) == ("sent", sms["sid"], "queued")
    clock.now = REMINDER_AT + timedelta(minutes=1)
    return row


def row_now(session, row: OutboxMessage) -> OutboxMessage:
    session.expire_all()
    return session.get(OutboxMessage, row.id)


class TestStatusMoves:
    def test_sent_then_delivered_and_a_late_sent_changes_nothing(self, twilio, texted, session, clock):
        assert twilio.status(texted.id, texted.provider_id, "sent").status_code == 204
        assert (row_now(session, texted).status, row_now(session, texted).provider_status) == ("sent", "sent")
        twilio.status(texted.id, texted.provider_id, "delivered")
        row = row_now(session, texted)
        assert (row.status, row.provider_status, row.delivered_at) == ("delivered", "delivered", clock.now)
        clock.advance(minutes=5)
        for late in ("sent", "queued", "sending", "undelivered"):
            assert twilio.status(texted.id, texted.provider_id, late, "30008" if late == "undelivered" else None
                                 ).status_code == 204
        row = row_now(session, texted)
        assert (row.status, row.provider_status, row.error_code) == ("delivered", "delivered", None)
        assert row.delivered_at == REMINDER_AT + timedelta(minutes=1)

    def test_found_by_message_sid_without_the_outbox_id(self, twilio, texted, session):
        assert twilio.status(None, texted.provider_id, "delivered").status_code == 204
        assert row_now(session, texted).status == "delivered"

    def test_a_report_for_nothing_we_sent_changes_nothing(self, twilio, texted, session):
        assert twilio.status(None, "SMnotours", "delivered").status_code == 204
        assert twilio.status(99999, "SMnotours", "delivered").status_code == 204
        assert twilio.status(texted.id, "SManotherattempt", "failed", "30005").status_code == 204
        assert row_now(session, texted).status == "sent"

    def test_a_forged_report_is_refused_and_changes_nothing(self, twilio, texted, session):
        form = {"MessageSid": texted.provider_id, "MessageStatus": "failed", "ErrorCode": "30005"}
        response = twilio.post(f"/twilio/status?outbox_id={texted.id}", form, signature="forged")
        assert response.status_code == 403
        assert twilio.post(f"/twilio/status?outbox_id={texted.id}", form, signature=None).status_code == 403
        assert row_now(session, texted).status == "sent"

    def test_a_send_whose_answer_was_lost_is_settled_by_the_report(self, twilio, texted, session):
        sid = texted.provider_id
        row = row_now(session, texted)
        row.status, row.provider_id = "unknown", None  # the worker died after Twilio took it
        session.commit()
        twilio.status(texted.id, sid, "delivered")
        row = row_now(session, texted)
        assert (row.status, row.provider_id) == ("delivered", sid)


class TestFailures:
    @pytest.mark.parametrize("status, code, ours", [
        ("undelivered", "30005", "failed"), ("undelivered", "30006", "failed"), ("undelivered", "30004", "failed"),
        ("failed", "30007", "failed"), ("undelivered", "21614", "failed"), ("failed", "21211", "failed"),
        ("undelivered", "30003", "undelivered"), ("undelivered", "30008", "undelivered"),
    ])
    def test_a_text_that_did_not_arrive_keeps_its_code_and_falls_back_to_email(
            self, twilio, texted, session, two_way, smtp_server, api, status, code, ours):
        assert twilio.status(texted.id, texted.provider_id, status, code).status_code == 204
        row = row_now(session, texted)
        assert (row.status, row.provider_status, row.error_code) == (ours, status, code)
        assert row.error_message.startswith(status)
        run_pass(two_way, REMINDER_AT + timedelta(minutes=2))
        [mail] = smtp_server.messages
        assert mail.rcpt_tos == ["maya@example.org"] and "first visit" in mail.message["Subject"]
        [email] = outbox(session, rule="first_induction_24h", channel="email")
        assert email.status == "sent" and email.planned_for == texted.planned_for
        problems = api("/api/v1/delivery-problems")["messages"]
        assert [(p["id"], p["status"], p["error_code"], p["patient_external_id"]) for p in problems] == [
            (texted.id, ours, code, "p1")]
        run_pass(two_way, REMINDER_AT + timedelta(minutes=3))
        twilio.status(texted.id, texted.provider_id, status, code)  # Twilio repeats itself
        run_pass(two_way, REMINDER_AT + timedelta(minutes=4))
        assert len(smtp_server.messages) == 1

    def test_unsubscribed_at_the_carrier_marks_the_patient_opted_out(self, twilio, texted, session, two_way,
                                                                      fake_twilio, clock):
        twilio.status(texted.id, texted.provider_id, "failed", "21610")
        person = patient(session)
        assert person.sms_opted_out and person.opted_out_at == clock.now
        assert row_now(session, texted).status == "failed"

    def test_no_email_on_file_means_no_fallback_but_the_failure_is_listed(self, twilio, session, two_way,
                                                                           fake_twilio, smtp_server, api, clock):
        book(session, starts_at="2026-12-10T10:00:00-05:00")
        run_pass(two_way, REMINDER_AT)
        row = outbox(session, channel="sms", status="sent")[0]
        clock.now = REMINDER_AT + timedelta(minutes=1)
        twilio.status(row.id, row.provider_id, "undelivered", "30006")
        run_pass(two_way, REMINDER_AT + timedelta(minutes=2))
        assert smtp_server.messages == []
        assert [p["error_code"] for p in api("/api/v1/delivery-problems")["messages"]] == ["30006"]

    def test_a_check_in_that_did_not_arrive_is_not_emailed(self, twilio, session, two_way, smtp_server, clock):
        book(session, starts_at="2026-12-07T10:00:00-05:00", status="completed", email="maya@example.org",
             channel="sms")
        run_pass(two_way, at("2026-12-08T10:00:00-05:00"))
        [row] = outbox(session, rule="checkin_day_after", status="sent")
        twilio.status(row.id, row.provider_id, "undelivered", "30005")
        run_pass(two_way, at("2026-12-08T10:05:00-05:00"))
        assert smtp_server.messages == [] and row_now(session, row).status == "failed"

    def test_a_staff_alert_that_did_not_arrive_is_logged_as_an_error(self, twilio, session, two_way, fake_twilio,
                                                                      caplog, clock):
        book(session, starts_at="2026-12-10T10:00:00-05:00")
        clock.now = NOW
        answer(twilio.sms("i want to die"))
        sms_alert = [row for row in outbox(session, kind="alert") if row.channel == "sms"][0]
        with caplog.at_level(logging.ERROR):
            twilio.status(sms_alert.id, sms_alert.provider_id, "undelivered", "30003")
        assert row_now(session, sms_alert).status == "undelivered"
        assert any("staff crisis alert was not delivered" in r.getMessage() for r in caplog.records)

    @pytest.mark.parametrize("code, ours, reason", [
        ("30003", "the text did not arrive", "undelivered: unreachable destination handset"),
        ("30005", "the number cannot take texts", "undelivered: unknown or inactive number"),
        ("39999", "the text did not arrive", "undelivered: Twilio error 39999"),
        (None, "the text did not arrive", "undelivered: no reason given"),
    ])
    def test_staff_read_why_in_plain_words(self, twilio, texted, session, code, ours, reason):
        twilio.status(texted.id, texted.provider_id, "undelivered", code)
        row = row_now(session, texted)
        assert row.status_reason == ours and row.error_message.startswith(reason)


class TestTheReport:
    """reminders.channels.twilio.webhooks.parse_status: Twilio's form in the service's own terms."""

    @staticmethod
    def report(status: str, code: str | None = None, outbox_id: int | None = 7):
        from reminders.channels.twilio.webhooks import parse_status

        form = {"MessageSid": "SMfeed", "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
        return parse_status(form | ({"ErrorCode": code} if code else {}), outbox_id)

    @pytest.mark.parametrize("status, state, final", [
        ("accepted", "accepted", False), ("queued", "accepted", False), ("sending", "accepted", False),
        ("sent", "sent", False), ("delivered", "delivered", True), ("read", "read", True),
        ("undelivered", "undelivered", True), ("failed", "failed", True), ("canceled", "undelivered", True),
        ("receiving", None, False),
    ])
    def test_each_status_says_where_it_leaves_the_message(self, status, state, final):
        report = self.report(status)
        assert (report.state, report.final, report.provider_status) == (state, final, status)
        assert (report.outbox_id, report.provider_id) == (7, "SMfeed")

    def test_statuses_rank_in_the_order_they_happen(self):
        ranks = [self.report(s).rank for s in ("accepted", "queued", "sending", "sent", "delivered", "read")]
        assert ranks == sorted(set(ranks))
        assert self.report("undelivered").rank == self.report("failed").rank == self.report("delivered").rank
        assert self.report("SENT").rank == self.report("sent").rank

    def test_an_unreachable_handset_is_undelivered_not_a_number_that_cannot_take_texts(self):
        report = self.report("undelivered", "30003")
        assert (report.state, report.permanent, report.unsubscribed, report.error_code) == (
            "undelivered", False, False, "30003")
        assert "unreachable" in report.reason

    @pytest.mark.parametrize("code", ["30004", "30005", "30006", "30007", "21211", "21408", "21612", "21614"])
    def test_a_number_that_cannot_take_texts_fails_for_good(self, code):
        report = self.report("undelivered", code)
        assert (report.state, report.permanent, report.unsubscribed) == ("failed", True, False)

    def test_unsubscribed_at_the_carrier(self):
        report = self.report("failed", "21610")
        assert (report.state, report.permanent, report.unsubscribed) == ("failed", True, True)
        assert "unsubscribed" in report.reason

    def test_a_failed_report_with_a_passing_code_is_still_failed(self):
        report = self.report("failed", "30003")
        assert (report.state, report.permanent) == ("failed", False)
