"""A patient's consent to texts: the one place that opts a patient out or back in.

Every text channel (a spec with `is_text`, reminders.channel_specs: SMS and WhatsApp) reaches the
phone number, and one consent covers them all (a STOP on either stops texts on both:
reminders.channels.kinds.reachable). Email has no opt-out of its own here: a patient who wants no
email has no address on record.

The columns (reminders.models.patients.Patient): `sms_opted_out`, when it last went out
(`opted_out_at`) and in (`opted_in_at`), and the words that opted out (`opt_out_text`: the
patient's STOP, or what the carrier reported). tests/test_owners.py fails on a write to them
anywhere else; the Patient model's own erasure hook aside.
"""
from __future__ import annotations

from datetime import datetime

from reminders.channel_specs import is_text_channel, text_channels
from reminders.models import Patient

OPT_OUT_TEXT_LIMIT = 160  # Patient.opt_out_text's length


def opt_out(patient: Patient, channel: str, now: datetime, *, how: str) -> bool:
    """Texts stop. `how`: the words that did it, kept for staff. Returns whether the patient was
    opted in until now (an opt-out already on record keeps its first time and words)."""
    _check_channel(channel)
    if patient.sms_opted_out:
        return False
    patient.sms_opted_out = True
    patient.opted_out_at = now
    patient.opt_out_text = how[:OPT_OUT_TEXT_LIMIT]
    return True


def opt_in(patient: Patient, channel: str, now: datetime) -> bool:
    """Texts may go again. Returns whether the patient was opted out until now."""
    _check_channel(channel)
    if not patient.sms_opted_out:
        return False
    patient.sms_opted_out = False
    patient.opted_in_at = now
    return True


def opt_out_erased(patient: Patient, now: datetime) -> None:
    """An erased patient gets no texts (reminders.retention.erase). The time of an earlier
    opt-out stays, even one followed by an opt-in: it is the patient's own, the erasure is not."""
    patient.sms_opted_out = True
    patient.opted_out_at = patient.opted_out_at or now


def _check_channel(channel: str) -> None:
    if not is_text_channel(channel):
        raise ValueError(f"no consent is kept for the {channel!r} channel, only for texts ({', '.join(text_channels())})")
