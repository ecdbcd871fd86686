"""The alerts on-call staff get for an escalation: one round's outbox rows (a text per staff phone,
an email per staff address) and their words. A lock screen's text names no one and quotes nothing;
the email has what the nurse needs to call back.

Written here, not in editable templates: a staff edit must never be able to break or empty the
one message that has to go out."""
from __future__ import annotations

import hashlib
from datetime import datetime
from zoneinfo import ZoneInfo

import phonenumbers

from reminders.escalations.kinds import (CLAIMED, REASON_CRISIS, REASON_EMERGENCY, REASON_SELF_HARM,
                                                REASON_URGENT, REASON_WORDS)
from reminders.locations import Place
from reminders.models import Escalation, Patient
from reminders.models.outbox import ChannelName, Kind
from reminders.outbox import OutboxRow

ALERT_RULE = "escalation_alert"
_KEY_LIMIT = 200  # OutboxMessage.dedupe_key's length


def staff_phones(settings) -> list[str]:
    numbers = []
    for raw in settings.staff_alert_phones:
        try:
            parsed = phonenumbers.parse(raw, settings.default_phone_region)
            number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            number = raw  # sent as written: a refusal is logged and shown on the row
        if number not in numbers:
            numbers.append(number)
    return numbers


def staff_emails(settings) -> list[str]:
    return list(dict.fromkeys(address.strip() for address in settings.staff_alert_emails if address.strip()))


def alert_key(escalation_id: int, round_no: int, channel: str, address: str) -> str:
    key = f"esc:{escalation_id}:round:{round_no}:{channel}:{address}"
    if len(key) > _KEY_LIMIT:
        key = f"esc:{escalation_id}:round:{round_no}:{channel}:sha1-{hashlib.sha1(address.encode()).hexdigest()}"
    return key


def alert_rows(settings, escalation: Escalation, patient: Patient | None, round_no: int, now: datetime,
               place: Place | None = None) -> list[OutboxRow]:
    """One round's rows, to `settings`' on-call (the escalation's location's), from its sender.
    `place`: the location, named in the alert when the clinic has several."""
    sms = alert_sms(settings, escalation, patient, round_no, place)
    subject, email = alert_email(settings, escalation, patient, round_no, place)
    wanted = [(ChannelName.SMS, phone, None, sms) for phone in staff_phones(settings)]
    wanted += [(ChannelName.EMAIL, address, subject, email) for address in staff_emails(settings)]
    return [
        OutboxRow(dedupe_key=alert_key(escalation.id, round_no, channel, address), kind=Kind.ALERT,
                  rule=ALERT_RULE, channel=channel, planned_for=now, due_at=now, escalation_id=escalation.id,
                  to_address=address, subject=subject_line, body=body, location_id=escalation.location_id)
        for channel, address, subject_line, body in wanted
    ]


def _carried_by(escalation: Escalation) -> str:
    return "on a questionnaire" if escalation.reason == REASON_SELF_HARM else "text"


def _escalations_url(settings) -> str:
    base = settings.public_base_url.rstrip("/")
    return f"{base}/escalations" if base else "the Escalations page of the staff app"


def _ending(number: str | None) -> str:
    digits = "".join(ch for ch in number or "" if ch.isdigit())
    return digits[-2:] if len(digits) >= 2 else "??"


def _local(settings, moment: datetime) -> datetime:
    return moment.astimezone(ZoneInfo(settings.clinic_timezone))


def _again(escalation: Escalation, round_no: int) -> str:
    if round_no == 1:
        return ""
    if escalation.status == CLAIMED:
        return f" (alert {round_no}: a new text on an escalation a colleague has claimed)"
    return f" (alert {round_no}, not yet claimed)"


def _named(place: Place | None) -> str:
    """"Bright Minds Austin: " leading an alert when the clinic has several locations."""
    return f"{place.name}: " if place is not None else ""


def alert_sms(settings, escalation: Escalation, patient: Patient | None, round_no: int,
              place: Place | None = None) -> str:
    """What a lock screen may show: no name, no message text, no diagnosis."""
    who = "a patient" if patient is not None else "an unknown number"
    number = escalation.from_number or (patient.phone if patient else "")
    again = _again(escalation, round_no)
    opened = _local(settings, escalation.opened_at)
    what = REASON_WORDS.get(escalation.reason, "possible crisis")
    to_clinic = "" if place is not None else f" to {settings.clinic_name}"
    return (f"{_named(place)}URGENT{again}: {what} {_carried_by(escalation)}{to_clinic} from {who} (phone ending "
            f"{_ending(number)}) at {opened:%H:%M}. Open {_escalations_url(settings)} and press "
            f"I'm on it when you take it.")


def alert_email(settings, escalation: Escalation, patient: Patient | None, round_no: int,
                place: Place | None = None) -> tuple[str, str]:
    again = _again(escalation, round_no)
    what = REASON_WORDS.get(escalation.reason, "possible crisis")
    subject = (f"{_named(place)}URGENT{again}: {what} {_carried_by(escalation)} from a patient, "
               f"escalation #{escalation.id}")
    if patient is not None:
        who = f"{patient.full_name} (record {patient.external_id or patient.id})"
        phone = patient.phone or escalation.from_number
    else:
        who = "an unknown number: no patient on file has it"
        phone = escalation.from_number
    reason = {
        REASON_CRISIS: "crisis language in a text",
        REASON_EMERGENCY: "a text that may describe a medical emergency (chest pain, breathing, fainting, "
                          "seizure, very high blood pressure)",
        REASON_SELF_HARM: "an answer above 0 to a questionnaire's question on thoughts of being better off "
                          "dead or of self-harm",
        REASON_URGENT: "a text a nurse should read now (a high blood pressure with symptoms, vomiting that won't "
                       "stop, confusion, a medication question, a worried relative, or flagged for review)",
    }.get(escalation.reason, f"a mood score of {settings.crisis_score_max} or less (0 is worst)")
    opened = _local(settings, escalation.opened_at)
    answered = (f"{settings.emergency_number} first, then the crisis line ({settings.crisis_line})"
                if escalation.reason == REASON_EMERGENCY
                else f"a promise that the on-call nurse will call within about {settings.oncall_callback_minutes} "
                     f"minutes, with {settings.emergency_number} and {settings.crisis_line} for anything worse"
                if escalation.reason == REASON_URGENT
                else f"the crisis line ({settings.crisis_line}) and {settings.emergency_number} for immediate danger")
    if escalation.reason == REASON_SELF_HARM:
        answered += " on the questionnaire's page"
    quoted = "\n".join(f"> {line}" for line in (escalation.text or "(no text)").splitlines())
    where = f"\nLocation: {place.name}" if place is not None else ""
    opening = ("A patient may be having a medical emergency." if escalation.reason == REASON_EMERGENCY
               else "A patient's text needs a nurse now." if escalation.reason == REASON_URGENT
               else "A patient may be in crisis.")
    body = f"""{opening} Please reach out now: press "I'm on it" on the escalation when you take it.

From:     {who}
Phone:    {phone}{where}
Why:      {reason}
Received: {opened:%A %Y-%m-%d %H:%M %Z}

{quoted}

The sender was answered at once with {answered}.

Claim it: {_escalations_url(settings)}
(or resolve it: POST /api/v1/escalations/{escalation.id}/ack)

This is alert {round_no}. Staff are alerted again every {settings.escalation_realert_minutes} minutes until someone claims it.
"""
    return subject, body
