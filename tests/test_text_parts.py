"""A text too long for its budget goes as the texts that hold it, in order, each once: nothing a
patient must know (the medications to hold, the after-visit cautions) is ever cut to fit."""
from __future__ import annotations

import pytest

from reminders.channels import DeliveryError, Receipt
from reminders.channels.local_outbox import read_outbox
from reminders.pipeline import run_pass
from reminders.text_segments import sms_length
from tests.conftest import at, both_databases
from tests.helpers import book, outbox, sent
from tests.test_pipeline import move

settings = both_databases()

VISIT = "2026-12-10T10:00:00-05:00"
AT_72H, AT_24H = "2026-12-07T10:00:00-05:00", "2026-12-09T10:00:00-05:00"
NOTES = {
    "en": "Hold clonazepam the night before and lamotrigine the morning of your visit",
    "es": "Sin clonazepam la noche anterior ni lamotrigina la mañana de la cita",
}
CAUTIONS = {
    "en": ("no driving, cycling or machinery until the next morning", "no big decisions, alcohol or cannabis for 24 hours"),
    "es": ("no maneje ni use bicicleta o máquinas hasta la mañana siguiente",
           "no tome decisiones importantes ni consuma alcohol o cannabis durante 24 horas"),
}


def texts_received(settings) -> list[str]:
    """What the patient's phone got, in order (the local outbox's log)."""
    return [m["body"] for m in read_outbox(settings.effective_outbox_dir) if m["channel"] == "sms"]


def sms_only(session, language: str = "en", note: str | None = None, starts_at: str = VISIT, **booking):
    visit = book(session, starts_at=starts_at, **booking)
    visit.patient.language = language
    visit.patient.medications_to_hold = NOTES[language] if note is None else note
    session.commit()
    return visit


def rows_of(session, rule: str):
    return [(row.part, row.status) for row in outbox(session, rule=rule, channel="sms")]


@pytest.mark.parametrize("language", ["en", "es"])
def test_an_sms_only_patient_gets_a_long_medications_note_in_full_in_the_next_text_once(settings, session, language):
    sms_only(session, language)
    assert run_pass(settings, at(AT_72H))["sent"] == 2
    first, second = texts_received(settings)
    assert NOTES[language] not in first and "call us" not in first.lower() and "llámenos" not in first.lower()
    assert NOTES[language] in second
    rows = outbox(session, rule="first_induction_72h")
    assert [(r.part, r.status) for r in rows] == [(1, "sent"), (2, "sent")]
    assert rows[1].sent_at >= rows[0].sent_at and rows[1].body == second  # staff see each text as it went
    # Again, and the next day: nothing goes twice.
    assert run_pass(settings, at(AT_72H))["sent"] == 0
    assert run_pass(settings, at("2026-12-08T10:00:00-05:00"))["sent"] == 0
    assert len(texts_received(settings)) == 2


@pytest.mark.parametrize("language", ["en", "es"])
def test_the_day_before_an_sms_only_patient_gets_the_cautions_and_the_note_by_text(settings, session, language):
    sms_only(session, language)
    run_pass(settings, at(AT_24H))
    received = texts_received(settings)
    assert len(received) == 2 and NOTES[language] in received[1]
    for caution in CAUTIONS[language]:
        assert caution in "\n".join(received)
    assert all(sms_length(text).fits() for text in received)


@pytest.mark.parametrize("kind", ["induction", "maintenance"])
def test_every_infusion_brings_the_cautions_by_text_whether_or_not_there_is_a_note(settings, session, kind):
    book(session, starts_at=VISIT, kind=kind)
    run_pass(settings, at(AT_24H))
    received = "\n".join(texts_received(settings))
    assert all(caution in received for caution in CAUTIONS["en"]), received


def test_a_patient_with_email_gets_the_cautions_in_the_email_too(settings, session):
    book(session, starts_at=VISIT, kind="maintenance", email="maya@example.org", channel="email")
    run_pass(settings, at(AT_24H))
    [email] = [r for r in outbox(session, channel="email") if r.rule == "maintenance_24h"]
    assert "no driving, cycling or machinery until the next morning" in email.body
    assert "no big decisions, alcohol or cannabis for 24 hours" in email.body


def test_every_text_of_a_long_message_fits_two_segments(settings, session):
    sms_only(session, "es", note="Sin clonazepam la noche anterior; la mitad de su dosis de lamotrigina la mañana de "
                                "la cita y ningún estimulante ese día; traiga la lista de sus medicamentos")
    run_pass(settings, at(AT_72H))
    run_pass(settings, at(AT_24H))
    received = texts_received(settings)
    assert len(received) >= 4
    assert all(sms_length(text).fits() for text in received), [sms_length(t) for t in received]
    assert any("traiga la lista de sus medicamentos" in text for text in received)


class _Busy:
    """A provider that answers 'too many requests' (worth a retry)."""

    name = "sms"

    def send(self, message):
        raise DeliveryError("Too Many Requests", permanent=False, code="20429")


class _Accepts:
    name = "sms"

    def __init__(self):
        self.sent: list[str] = []

    def send(self, message):
        self.sent.append(message.reference)
        return Receipt(provider_id=f"SM{message.reference}", status="queued")


def test_canceling_the_visit_cancels_both_texts(settings, session):
    visit = sms_only(session)
    run_pass(settings, at(AT_72H), channels={"sms": _Busy()})
    assert rows_of(session, "first_induction_72h") == [(1, "planned"), (2, "planned")]
    move(session, visit, status="canceled")
    run_pass(settings, at("2026-12-07T10:05:00-05:00"))
    assert rows_of(session, "first_induction_72h") == [(1, "canceled"), (2, "canceled")]
    assert texts_received(settings) == []


def test_the_second_text_waits_for_the_first_and_never_goes_before_it(settings, session):
    sms_only(session)
    run_pass(settings, at(AT_72H), channels={"sms": _Busy()})
    run_pass(settings, at("2026-12-07T10:00:30-05:00"), channels={"sms": _Busy()})  # the first still waits
    first, second = outbox(session, rule="first_induction_72h")
    assert second.status == "planned" and "waiting for text" in second.status_reason
    assert second.due_at >= first.due_at
    run_pass(settings, at("2026-12-07T11:00:00-05:00"))
    assert [part for part, status in rows_of(session, "first_induction_72h") if status == "sent"] == [1, 2]
    assert len(texts_received(settings)) == 2 and NOTES["en"] in texts_received(settings)[1]


def test_a_moved_visit_sends_both_texts_once_for_the_new_time(settings, session):
    visit = sms_only(session)
    run_pass(settings, at(AT_72H), channels={"sms": _Busy()})
    move(session, visit, starts_at="2026-12-12T10:00:00-05:00")
    run_pass(settings, at("2026-12-07T10:05:00-05:00"))
    assert rows_of(session, "first_induction_72h") == [(1, "planned"), (2, "canceled")]
    run_pass(settings, at("2026-12-09T10:00:00-05:00"))
    first, second = texts_received(settings)
    assert "Saturday, December 12" in first and NOTES["en"] in second
    assert rows_of(session, "first_induction_72h") == [(1, "sent"), (2, "sent")]


def test_a_crash_between_the_two_texts_sends_the_second_later_and_never_the_first_again(settings, session,
                                                                                         monkeypatch):
    from reminders.sending import Sender

    sms_only(session)
    provider = _Accepts()

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt("the worker was stopped between the two texts")

    with monkeypatch.context() as patch:
        patch.setattr(Sender, "_send_following", killed)
        with pytest.raises(KeyboardInterrupt):
            run_pass(settings, at(AT_72H), channels={"sms": provider})
    first, second = outbox(session, rule="first_induction_72h")
    assert (first.status, second.status, provider.sent) == ("sent", "planned", [str(first.id)])
    run_pass(settings, at("2026-12-07T10:01:00-05:00"), channels={"sms": provider})
    run_pass(settings, at("2026-12-07T10:02:00-05:00"), channels={"sms": provider})
    assert provider.sent == [str(first.id), str(second.id)]
    assert sent(session, rule="first_induction_72h") == [("first_induction_72h", "sms")] * 2


def test_a_second_text_that_may_have_gone_is_not_sent_again_nor_the_first(settings, session):
    class _TakesTheFirstThenStalls(_Accepts):
        def send(self, message):
            self.sent.append(message.reference)
            if len(self.sent) > 1:
                raise DeliveryError("read timed out", permanent=False, code="timeout", maybe_sent=True)
            return Receipt(provider_id=f"SM{message.reference}", status="queued")

    sms_only(session)
    provider = _TakesTheFirstThenStalls()
    run_pass(settings, at(AT_72H), channels={"sms": provider})
    run_pass(settings, at("2026-12-07T11:00:00-05:00"), channels={"sms": provider})
    assert rows_of(session, "first_induction_72h") == [(1, "sent"), (2, "unknown")]
    assert len(provider.sent) == len(set(provider.sent)) == 2


def test_a_patient_with_email_is_pointed_to_it_in_one_text(settings, session):
    sms_only(session, email="maya@example.org", channel="both")
    run_pass(settings, at(AT_72H))
    [text] = texts_received(settings)
    assert "Medications: see your email." in text and "clonazepam" not in text
    [email] = outbox(session, channel="email", status="sent")
    assert NOTES["en"] in email.body
