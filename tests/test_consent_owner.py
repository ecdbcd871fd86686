"""A patient's consent to texts (reminders.consent): out, back in, and on erasure."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from reminders import consent
from reminders.models import Patient

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
EARLIER = NOW - timedelta(days=30)


def test_out_keeps_the_first_time_and_words():
    patient = Patient(sms_opted_out=False)
    assert consent.opt_out(patient, "sms", EARLIER, how="STOP" + "!" * 200) is True
    assert consent.opt_out(patient, "whatsapp", NOW, how="stop again") is False
    assert (patient.sms_opted_out, patient.opted_out_at, patient.opt_out_text) == (True, EARLIER, "STOP" + "!" * 156)


def test_back_in_only_when_out():
    patient = Patient(sms_opted_out=False)
    assert consent.opt_in(patient, "sms", NOW) is False
    assert patient.opted_in_at is None
    consent.opt_out(patient, "sms", EARLIER, how="STOP")
    assert consent.opt_in(patient, "sms", NOW) is True
    assert (patient.sms_opted_out, patient.opted_in_at, patient.opted_out_at) == (False, NOW, EARLIER)


@pytest.mark.parametrize("opted_out_at, expected", [(None, NOW), (EARLIER, EARLIER)])
def test_erasure_opts_out_keeping_an_earlier_time(opted_out_at, expected):
    patient = Patient(sms_opted_out=False, opted_out_at=opted_out_at)
    consent.opt_out_erased(patient, NOW)
    assert (patient.sms_opted_out, patient.opted_out_at) == (True, expected)


def test_email_has_no_consent_here():
    with pytest.raises(ValueError, match="email"):
        consent.opt_out(Patient(sms_opted_out=False), "email", NOW, how="STOP")
