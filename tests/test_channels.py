"""Channels against real protocol partners: the twilio library against a fake Twilio API,
smtplib against an aiosmtpd server, and the local outbox on disk. A channel is its spec: a new one
registered here alone is read by the template store and by consent; a provider's webhooks sit
behind one small interface, registered by the web app at the URLs the provider calls."""
from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from reminders import consent
from reminders.calendar import visit_ics
from reminders.channel_specs import (
    EMAIL, SMS, SPECS, WHATSAPP, ChannelSpec, TemplatePart, channel_of_address, is_text_channel, template_suffixes,
    text_channels, without_address_prefix,
)
from reminders.channels import Attachment, DeliveryError, OutgoingMessage, channels_for
from reminders.channels.base import WebhookRequest
from reminders.channels.local_outbox import LocalOutbox, read_outbox
from reminders.channels.smtp_email import SMTPEmail
from reminders.channels.twilio.client import TwilioMessaging
from reminders.channels.twilio.webhooks import TwilioWebhooks
from reminders.config import Settings
from reminders.models import Patient
from reminders.rendering import TemplateStore, message_templates
from reminders.web.staff.template_samples import base_name, part_of, segmented

PATIENT_PHONE = "+15558675309"
PATIENT_EMAIL = "ann.patient@example.org"
CHANNEL_ENV = [
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_API_BASE_URL",
    "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_STARTTLS",
    "SMTP_TIMEOUT_SECONDS", "MAIL_FROM", "OUTBOX_DIR",
]


@pytest.fixture
def settings_from(monkeypatch, tmp_path):
    def make(*envs: dict[str, str], **overrides: str) -> Settings:
        for name in CHANNEL_ENV:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("REMINDERS_DATA_DIR", str(tmp_path / "data"))
        for env in (*envs, overrides):
            for key, value in env.items():
                monkeypatch.setenv(key, value)
        return Settings()
    return make


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sms(**kw) -> OutgoingMessage:
    defaults = dict(to=PATIENT_PHONE, body="Reminder: your visit is tomorrow at 9:30. Reply C to "
                    "confirm, R to reschedule.", reference="outbox-41")
    return OutgoingMessage(**{**defaults, **kw})


def visit_email(starts_at: datetime) -> OutgoingMessage:
    ics = visit_ics("appt-7@clinic.test", starts_at, starts_at + timedelta(minutes=60),
                    "Infusion visit", "12 Main St, Suite 4", "Arrive 15 minutes early.")
    return OutgoingMessage(
        to=PATIENT_EMAIL, subject="Your first infusion on Tuesday",
        body="No solid food for 6 hours before.\nArrange a ride home.",
        html="<p>No solid food for <b>6 hours</b> before.</p>",
        attachments=(Attachment("visit.ics", "text/calendar", ics),),
        reference="outbox-42",
    )


# -- SMS through Twilio --------------------------------------------------------------

def test_sms_reaches_twilio_with_number_sender_body_and_callback(fake_twilio, twilio_settings,
                                                                  settings_from):
    channel = TwilioMessaging(settings_from(twilio_settings))
    receipt = channel.send(sms(status_callback="https://clinic.test/twilio/status?m=41"))

    [sent] = fake_twilio.messages
    assert sent["to"] == PATIENT_PHONE
    assert sent["from_"] == "+15005550006"
    assert sent["body"].startswith("Reminder: your visit is tomorrow")
    assert sent["status_callback"] == "https://clinic.test/twilio/status?m=41"
    assert receipt.provider_id == sent["sid"] and receipt.provider_id.startswith("SM")
    assert receipt.status == "queued"
    assert fake_twilio.requests[-1]["path"] == \
        f"/2010-04-01/Accounts/{fake_twilio.account_sid}/Messages.json"


def test_sms_without_callback_sends_none(fake_twilio, twilio_settings, settings_from):
    TwilioMessaging(settings_from(twilio_settings)).send(sms())
    assert "StatusCallback" not in fake_twilio.requests[-1]["form"]


def test_messaging_service_sender_is_sent_as_messaging_service_sid(fake_twilio, twilio_settings,
                                                                   settings_from):
    service = "MG" + "0" * 32
    receipt = TwilioMessaging(settings_from(twilio_settings, TWILIO_FROM=service)).send(sms())

    [sent] = fake_twilio.messages
    assert sent["messaging_service_sid"] == service
    assert sent["from_"] is None
    assert receipt.status == "accepted"


def test_base_url_with_trailing_slash_still_reaches_the_fake(fake_twilio, twilio_settings,
                                                             settings_from):
    settings = settings_from(twilio_settings, TWILIO_API_BASE_URL=fake_twilio.url + "/")
    TwilioMessaging(settings).send(sms())
    assert len(fake_twilio.messages) == 1


def test_invalid_number_is_permanent_and_keeps_code_without_the_number(
        fake_twilio, twilio_settings, settings_from, caplog):
    fake_twilio.fail_for(PATIENT_PHONE, status=400, code=21211)
    channel = TwilioMessaging(settings_from(twilio_settings))
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        channel.send(sms())

    assert caught.value.permanent is True
    assert caught.value.code == "21211"
    assert PATIENT_PHONE not in str(caught.value)
    assert PATIENT_PHONE not in caplog.text
    assert "outbox-41" in caplog.text
    # the failure is per number: another patient still gets through
    channel.send(sms(to="+15550001111"))
    assert [m["to"] for m in fake_twilio.messages] == ["+15550001111"]


@pytest.mark.parametrize("status,code", [
    (400, 21610),  # the patient texted STOP
    (400, 21614),  # not a mobile number
    (400, 30007),  # carrier filtering: a person rewords it, it is not resent blindly
    (400, 21999),  # any other 4xx
])
def test_permanent_twilio_errors(fake_twilio, twilio_settings, settings_from, status, code):
    fake_twilio.fail_next(status=status, code=code, message="refused")
    with pytest.raises(DeliveryError) as caught:
        TwilioMessaging(settings_from(twilio_settings)).send(sms())
    assert (caught.value.permanent, caught.value.code) == (True, str(code))


@pytest.mark.parametrize("status,code", [(429, 20429), (500, 20500), (503, 20503)])
def test_transient_twilio_errors_then_a_retry_goes_through(fake_twilio, twilio_settings,
                                                          settings_from, status, code):
    fake_twilio.fail_next(status=status, code=code, message="try later")
    channel = TwilioMessaging(settings_from(twilio_settings))
    with pytest.raises(DeliveryError) as caught:
        channel.send(sms())
    assert (caught.value.permanent, caught.value.code) == (False, str(code))

    assert channel.send(sms()).provider_id == fake_twilio.messages[0]["sid"]


def test_wrong_auth_token_is_transient_so_reminders_wait_for_the_fix(
        fake_twilio, twilio_settings, settings_from, caplog):
    settings = settings_from(twilio_settings, TWILIO_AUTH_TOKEN="not-the-token")
    with caplog.at_level(logging.ERROR), pytest.raises(DeliveryError) as caught:
        TwilioMessaging(settings).send(sms())
    assert (caught.value.permanent, caught.value.code) == (False, "20003")
    assert "TWILIO_AUTH_TOKEN" in caplog.text


def test_refused_connection_is_transient(twilio_settings, settings_from):
    settings = settings_from(twilio_settings,
                             TWILIO_API_BASE_URL=f"http://127.0.0.1:{closed_port()}", TWILIO_TIMEOUT_SECONDS="3")
    with pytest.raises(DeliveryError) as caught:
        TwilioMessaging(settings).send(sms())
    assert (caught.value.permanent, caught.value.code) == (False, "connection")
    assert not caught.value.maybe_sent  # nothing reached Twilio: safe to try again


def test_timeout_is_transient(fake_twilio, twilio_settings, settings_from):
    fake_twilio.hang_next()
    with pytest.raises(DeliveryError) as caught:
        TwilioMessaging(settings_from(twilio_settings, TWILIO_TIMEOUT_SECONDS="0.3")).send(sms())
    assert (caught.value.permanent, caught.value.code) == (False, "timeout")
    assert caught.value.maybe_sent  # Twilio had the request: it may have sent the text


def test_an_unreachable_handset_is_worth_a_few_more_tries_not_a_permanent_failure(
        fake_twilio, twilio_settings, settings_from):
    # Twilio: 30003 is a phone off or out of coverage; send again, a limited number of times.
    fake_twilio.fail_next(status=400, code=30003, message="Unreachable destination handset")
    channel = TwilioMessaging(settings_from(twilio_settings))
    with pytest.raises(DeliveryError) as caught:
        channel.send(sms())
    assert (caught.value.permanent, caught.value.code, caught.value.max_attempts) == (False, "30003", 3)
    assert channel.send(sms()).provider_id == fake_twilio.messages[0]["sid"]


def test_a_refusal_for_good_has_no_attempt_limit_to_wait_for(fake_twilio, twilio_settings, settings_from):
    fake_twilio.fail_next(status=400, code=21610, message="unsubscribed")
    with pytest.raises(DeliveryError) as caught:
        TwilioMessaging(settings_from(twilio_settings)).send(sms())
    assert (caught.value.permanent, caught.value.max_attempts) == (True, None)


def test_the_code_table_spells_codes_as_strings_and_limits_only_what_it_retries():
    from reminders.channels.twilio.codes import CODES

    for code, about in CODES.items():
        assert code.isdigit() and about.reason
        assert about.max_attempts is None or not about.permanent_on_send


# -- WhatsApp through the same client ------------------------------------------------

def test_whatsapp_puts_its_prefix_on_the_to_and_the_from(fake_twilio, twilio_settings, settings_from):
    channel = TwilioMessaging(settings_from(twilio_settings), name="whatsapp", address_prefix="whatsapp:")
    receipt = channel.send(sms(status_callback="https://clinic.test/twilio/status?outbox_id=7"))

    [sent] = fake_twilio.messages
    assert (sent["to"], sent["from_"]) == (f"whatsapp:{PATIENT_PHONE}", "whatsapp:+15005550006")
    assert sent["status_callback"] == "https://clinic.test/twilio/status?outbox_id=7"
    assert channel.name == "whatsapp" and receipt.provider_id == sent["sid"]


def test_whatsapp_from_its_own_sender_or_a_messaging_service(fake_twilio, twilio_settings, settings_from):
    settings = settings_from(twilio_settings)
    TwilioMessaging(settings, name="whatsapp", sender="+15005550009", address_prefix="whatsapp:").send(sms())
    service = "MG" + "1" * 32
    TwilioMessaging(settings, name="whatsapp", sender=service, address_prefix="whatsapp:").send(
        sms(to=f"whatsapp:{PATIENT_PHONE}"))  # an address that has its prefix already keeps one

    first, second = fake_twilio.messages
    assert (first["to"], first["from_"]) == (f"whatsapp:{PATIENT_PHONE}", "whatsapp:+15005550009")
    assert (second["to"], second["from_"], second["messaging_service_sid"]) == (
        f"whatsapp:{PATIENT_PHONE}", None, service)


def test_a_paused_sms_number_does_not_hold_whatsapp(fake_twilio, twilio_settings, settings_from):
    # A number of its own, so that the pause stays in this test (pacers live as long as the process).
    settings = settings_from(twilio_settings, TWILIO_FROM="+15005550123", REDIS_URL="")
    texts = TwilioMessaging(settings)
    whatsapp = TwilioMessaging(settings, name="whatsapp", address_prefix="whatsapp:")
    texts._pacer.pause(120)
    with pytest.raises(DeliveryError) as paused:
        texts.send(sms())
    assert paused.value.code == "paused"
    whatsapp.send(sms())
    assert [m["from_"] for m in fake_twilio.messages] == ["whatsapp:+15005550123"]


# -- email over SMTP -----------------------------------------------------------------

def test_email_has_text_html_and_a_calendar_file_at_the_right_time(smtp_server, smtp_settings,
                                                                   settings_from):
    starts_at = datetime(2025, 3, 4, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    receipt = SMTPEmail(settings_from(smtp_settings)).send(visit_email(starts_at))

    [mail] = smtp_server.messages
    assert mail.rcpt_tos == [PATIENT_EMAIL]
    assert mail.mail_from == "reminders@clinic.test"
    msg = mail.message
    assert msg["Message-ID"] == receipt.provider_id
    assert msg["Subject"] == "Your first infusion on Tuesday"
    assert "Arrange a ride home." in msg.get_body(("plain",)).get_content()
    assert "<b>6 hours</b>" in msg.get_body(("html",)).get_content()

    [ics] = list(msg.iter_attachments())
    assert ics.get_content_type() == "text/calendar"
    assert ics.get_content_charset() == "utf-8"
    assert ics.get_filename() == "visit.ics"
    event = Calendar.from_ical(ics.get_content()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == datetime(2025, 3, 4, 14, 30, tzinfo=timezone.utc)
    assert str(event["location"]) == "12 Main St, Suite 4"


def test_plain_email_is_a_single_text_part(smtp_server, smtp_settings, settings_from):
    SMTPEmail(settings_from(smtp_settings)).send(
        OutgoingMessage(to=PATIENT_EMAIL, subject="Check-in", body="How are you today?"))
    [mail] = smtp_server.messages
    assert mail.message.get_content_type() == "text/plain"
    assert mail.message.get_content().strip() == "How are you today?"


@pytest.mark.parametrize("stage,code,permanent", [
    ("rcpt", 550, True),
    ("rcpt", 451, False),
    ("data", 554, True),
    ("data", 452, False),
    ("mail", 553, True),
])
def test_smtp_refusals_are_sorted_by_reply_code(smtp_server, smtp_settings, settings_from,
                                                caplog, stage, code, permanent):
    smtp_server.reject_next(stage, code, f"<{PATIENT_EMAIL}>: refused")
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        SMTPEmail(settings_from(smtp_settings)).send(visit_email(datetime.now(timezone.utc)))
    assert (caught.value.permanent, caught.value.code) == (permanent, str(code))
    assert PATIENT_EMAIL not in str(caught.value)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")  # not the fake's
    assert PATIENT_EMAIL not in ours
    assert "outbox-42" in ours and "@example.org" in ours
    assert smtp_server.messages == []


def test_smtp_server_down_is_transient(smtp_settings, settings_from):
    settings = settings_from(smtp_settings, SMTP_PORT=str(closed_port()))
    with pytest.raises(DeliveryError) as caught:
        SMTPEmail(settings).send(visit_email(datetime.now(timezone.utc)))
    assert (caught.value.permanent, caught.value.code) == (False, "connection")


def test_smtp_login_works_and_a_wrong_password_waits_for_the_fix(smtp_server, smtp_settings,
                                                                 settings_from, caplog):
    good = settings_from(smtp_settings, SMTP_USERNAME="clinic", SMTP_PASSWORD="secret")
    SMTPEmail(good).send(visit_email(datetime.now(timezone.utc)))
    assert len(smtp_server.messages) == 1

    bad = settings_from(smtp_settings, SMTP_USERNAME="clinic", SMTP_PASSWORD="wrong")
    with caplog.at_level(logging.ERROR), pytest.raises(DeliveryError) as caught:
        SMTPEmail(bad).send(visit_email(datetime.now(timezone.utc)))
    assert (caught.value.permanent, caught.value.code) == (False, "auth")
    assert "SMTP_PASSWORD" in caplog.text


# -- local outbox --------------------------------------------------------------------

def test_local_outbox_writes_readable_lines_and_eml_files(tmp_path):
    sms_box, mail_box = LocalOutbox("sms", tmp_path), LocalOutbox("email", tmp_path)
    text = sms_box.send(sms(status_callback="https://clinic.test/s"))
    starts_at = datetime(2025, 3, 4, 14, 30, tzinfo=timezone.utc)
    mail = mail_box.send(visit_email(starts_at))

    assert text.provider_id.startswith("local-") and text.status == "sent"
    first, second = read_outbox(tmp_path)
    assert first["id"] == text.provider_id and first["channel"] == "sms"
    assert first["to"] == PATIENT_PHONE and first["status_callback"] == "https://clinic.test/s"
    assert first["reference"] == "outbox-41"
    assert datetime.fromisoformat(first["at"]).tzinfo is not None
    assert second["channel"] == "email" and second["attachments"] == ["visit.ics"]
    assert second["subject"] == "Your first infusion on Tuesday"

    eml = (tmp_path / f"{mail.provider_id}.eml").read_bytes()
    parsed = email.message_from_bytes(eml, policy=email.policy.default)
    assert parsed["To"] == PATIENT_EMAIL
    [ics] = list(parsed.iter_attachments())
    event = Calendar.from_ical(ics.get_content()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == starts_at
    assert [p.name for p in tmp_path.glob("*.eml")] == [f"{mail.provider_id}.eml"]
    assert list(tmp_path.glob(f"{text.provider_id}*")) == []  # no .eml for an SMS


def test_local_outbox_keeps_every_line_whole_under_concurrent_senders(tmp_path):
    box = LocalOutbox("sms", tmp_path)
    long_body = "x" * 20_000  # larger than one pipe/page write

    def send_many(worker: int):
        for i in range(20):
            box.send(sms(body=long_body, reference=f"w{worker}-{i}"))

    threads = [threading.Thread(target=send_many, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    lines = read_outbox(tmp_path)
    assert len(lines) == 120
    assert {line["reference"] for line in lines} == {f"w{w}-{i}" for w in range(6) for i in range(20)}


def test_empty_outbox_reads_as_nothing(tmp_path):
    assert read_outbox(tmp_path / "missing") == []


# -- choosing channels ---------------------------------------------------------------

def test_no_settings_means_local_outbox_and_says_so(settings_from, caplog):
    settings = settings_from()
    with caplog.at_level(logging.INFO, logger="reminders.channels"):
        channels = channels_for(settings)

    assert set(channels) == {"sms", "email"}
    for name, channel in channels.items():
        assert isinstance(channel, LocalOutbox) and channel.name == name
        assert channel.directory == settings.effective_outbox_dir
    assert f"No Twilio settings: SMS goes to the local outbox at {settings.effective_outbox_dir}" \
        in caplog.text
    channels["sms"].send(sms())
    assert read_outbox(settings.effective_outbox_dir)[0]["to"] == PATIENT_PHONE


def test_settings_pick_twilio_and_smtp_and_both_deliver(fake_twilio, smtp_server, twilio_settings,
                                                        smtp_settings, settings_from):
    channels = channels_for(settings_from(twilio_settings, smtp_settings))
    assert isinstance(channels["sms"], TwilioMessaging)
    assert isinstance(channels["email"], SMTPEmail)

    channels["sms"].send(sms())
    channels["email"].send(visit_email(datetime.now(timezone.utc)))
    assert len(fake_twilio.messages) == 1 and len(smtp_server.messages) == 1


# -- calendar ------------------------------------------------------------------------

def test_visit_ics_refuses_a_time_without_zone():
    with pytest.raises(ValueError):
        visit_ics("u", datetime(2025, 3, 4, 9, 30), datetime(2025, 3, 4, 10, 30), "s", "", "")


def test_visit_ics_has_a_reminder_two_hours_before():
    start = datetime(2025, 3, 4, 14, 30, tzinfo=timezone.utc)
    cal = Calendar.from_ical(visit_ics("u@x", start, start + timedelta(hours=1), "Visit", "", ""))
    assert str(cal["method"]) == "PUBLISH" and str(cal["version"]) == "2.0"
    [alarm] = cal.walk("VALARM")
    assert alarm.decoded("trigger") == timedelta(hours=-2)


# ---------------------------------------------------------------- a channel is its spec

# A channel the service does not have: a text channel to the phone, for patients who chose it,
# with a wording of its own where a rule has one (else the SMS text).
SIGNAL = ChannelSpec(
    name="signal", contact="phone", template_suffix="signal", parts=(TemplatePart("signal", ".signal.j2", "Signal"),),
    is_text=True, carries_calendar=False, counts_segments=False, reports_delivery=False, fallback="sms",
    template_fallback="sms", label="Signal message", chosen_only=True)


@pytest.fixture
def signal(monkeypatch):
    """The new channel, registered for this test only: nothing else is touched."""
    monkeypatch.setitem(SPECS, SIGNAL.name, SIGNAL)
    return SIGNAL


def test_a_new_channel_is_one_spec_its_suffix_read_by_the_template_store(signal, tmp_path):
    (tmp_path / "welcome.sms.j2").write_text("Welcome, {{ patient.first_name }}.")
    store = TemplateStore(tmp_path)
    assert message_templates(store, "welcome", None, signal) == {"body": "welcome.sms.j2"}  # the SMS wording
    (tmp_path / "welcome.signal.j2").write_text("Welcome on Signal, {{ patient.first_name }}.")
    assert message_templates(store, "welcome", None, signal) == {"body": "welcome.signal.j2"}
    # The templates admin files it as the channel's part, under its base name, not as an email text.
    assert (part_of("es/welcome.signal.j2"), base_name("es/welcome.signal.j2")) == ("signal", "welcome")
    assert template_suffixes()["signal"] == ".signal.j2" and not segmented("welcome.signal.j2")


def test_a_new_channel_is_one_spec_its_text_ness_read_by_consent(signal):
    now = datetime(2026, 3, 2, 15, tzinfo=timezone.utc)
    patient = Patient(first_name="Ann", phone=PATIENT_PHONE, timezone="America/New_York",
                      preferred_channel="sms", sms_opted_out=False)
    assert consent.opt_out(patient, signal.name, now, how="STOP") and patient.sms_opted_out
    assert consent.opt_in(patient, signal.name, now) and not patient.sms_opted_out
    assert signal.name in text_channels() and is_text_channel(signal.name)
    with pytest.raises(ValueError, match="only for texts"):
        consent.opt_out(patient, EMAIL.name, now, how="STOP")
    # Chosen only: a phone alone reaches SMS, not the new channel.
    assert patient.channels() == {SMS.name}


def test_without_the_spec_the_channel_is_unknown_everywhere():
    assert "signal" not in text_channels() and "signal" not in template_suffixes()
    with pytest.raises(ValueError):
        consent.opt_out(Patient(first_name="Ann"), "signal", datetime.now(timezone.utc), how="STOP")


def test_the_specs_own_the_provider_s_address_prefix():
    assert channel_of_address("whatsapp:+15558675309") == WHATSAPP.name
    assert channel_of_address("+15558675309") == SMS.name
    assert without_address_prefix("WhatsApp:+15558675309") == PATIENT_PHONE


# ---------------------------------------------------------------- a provider's webhooks

def _twilio_hooks(settings_from) -> TwilioWebhooks:
    return TwilioWebhooks(settings_from(TWILIO_ACCOUNT_SID="AC" + "1" * 32, TWILIO_AUTH_TOKEN="t" * 32,
                                        PUBLIC_BASE_URL="https://clinic.test"))


def _hook_request(path: str, form: dict, query: str = "", signature: str | None = None) -> WebhookRequest:
    headers = {"X-Twilio-Signature": signature} if signature else {}
    args = dict(pair.split("=", 1) for pair in query.split("&")) if query else {}
    return WebhookRequest(path=path, full_path=path + (f"?{query}" if query else ""), form=form, args=args,
                          headers=headers)


def test_twilio_webhooks_validate_and_parse_behind_the_providers_interface(settings_from):
    from twilio.request_validator import RequestValidator

    hooks = _twilio_hooks(settings_from)
    form = {"MessageSid": "SM1", "From": "whatsapp:" + PATIENT_PHONE, "To": "whatsapp:+15550100100", "Body": "C",
            "AccountSid": hooks.account_sid}
    signed = RequestValidator(hooks.auth_token).compute_signature("https://clinic.test/twilio/sms", form)
    assert hooks.validate_request(_hook_request("/twilio/sms", form, signature=signed)) is None
    assert "no X-Twilio-Signature" in hooks.validate_request(_hook_request("/twilio/sms", form))
    [text] = hooks.parse_events(_hook_request("/twilio/sms", form))
    assert (text.channel, text.from_number, text.body) == (WHATSAPP.name, PATIENT_PHONE, "C")
    status = {"MessageSid": "SM1", "MessageStatus": "delivered", "AccountSid": hooks.account_sid}
    [report] = hooks.parse_events(_hook_request("/twilio/status", status, query="outbox_id=7"))
    assert (report.outbox_id, report.provider_id, report.state) == (7, "SM1", "delivered")
    [far] = hooks.parse_events(_hook_request("/twilio/status", status, query=f"outbox_id={2**31}"))
    assert far.outbox_id is None  # never one of ours: found by its message id
    body, mimetype = hooks.answer("Thanks")
    assert mimetype == "application/xml" and "<Message>Thanks</Message>" in body


def test_the_web_app_posts_to_each_provider_s_routes_at_the_urls_its_console_has():
    from reminders.web import create_app

    app = create_app(Settings(), {"TESTING": True})
    posted = {rule.rule for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    assert {"/twilio/sms", "/twilio/status"} <= posted  # set in clinics' Twilio consoles: never moved
    assert {route.path for route in TwilioWebhooks.routes} == {"/twilio/sms", SMS.status_callback_path}
    assert WHATSAPP.status_callback_path == SMS.status_callback_path == "/twilio/status"
