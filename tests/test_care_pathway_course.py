"""One pathway per patient, whatever their channel and language: a 45-day course (tests/course_simulation.py)
for SMS-only, email-only and both, in English and Spanish, with a moved first infusion, a missed
third, a medications-to-hold note too long for a first text, caring contacts after the series and a
maintenance visit. Each test reads what every patient received, as the provider got it.

Every failure names the patient and the step: "es-sms, medications note: ...".
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reminders.text_segments import sms_length
from tests.course_simulation import (MEDICATIONS, MISSED, MOVED, PEOPLE, VISITS, Delivery, Simulation, course_settings,
                                     local, visit_start)

MESSAGES_PAGE = Path(__file__).resolve().parent.parent / "docs" / "messages.md"
HELD = [v.ref for v in VISITS if v.ref != MISSED]
SERIES_END = next(v for v in VISITS if v.ref == "i7")
MAINTENANCE = next(v for v in VISITS if v.ref == "m1")
BY_KEY = {p.key: p for p in PEOPLE}
NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4}
# The after-visit cautions, in each language's words (the clinic may edit them; these are the
# shipped templates' phrases).
NO_DRIVING = {"en": re.compile(r"\bno driving\b", re.I), "es": re.compile(r"\bno (maneje|conduzca)\b", re.I)}
NO_ALCOHOL = re.compile(r"\balcohol\b", re.I)
# Words that ask for an answer by text.
REPLY_BY_TEXT = {
    "en": re.compile(r"\b[Rr]eply [A-Z]\b|\b[Rr]eply (?:to|by) (?:our |this |a )?text|\b[Tt]ext us back\b"),
    "es": re.compile(r"\b[Rr]esponda [A-Z]\b"
                     r"|\b[Rr]esponda (?:a|por) (?:nuestro |este |un )?(?:mensaje de texto|texto|SMS)"),
}
MOVED_DAY_WORDS = {"en": "January 5", "es": "5 de enero"}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The course, run once for the module (the same settings the `settings` fixture builds)."""
    from reminders.config import Settings, get_settings, reset_settings
    from reminders.db import dispose_engines
    from reminders.migrations import upgrade

    folder = tmp_path_factory.mktemp("course")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n.upper() for n in Settings.model_fields]:
            patch.delenv(name, raising=False)
        patch.setenv("REMINDERS_DATA_DIR", str(folder / "data"))
        patch.setenv("SECRET_KEY", "test-secret")
        patch.setenv("DATABASE_URL", f"sqlite:///{folder / 'reminders.db'}")

        def configure(**values):
            for name, value in values.items():
                patch.setenv(name.upper(), str(value))
            reset_settings()
            return get_settings()

        settings = course_settings(configure)
        upgrade(settings.effective_database_url)
        simulation = Simulation(settings)
        result = simulation.run()
        result.settings = settings
        dispose_engines()
    reset_settings()
    return result


def plain(text: str) -> str:
    """For comparing content across channels: accents folded (a text may lose them), spaces single."""
    folded = "".join(c for c in unicodedata.normalize("NFD", text or "") if not unicodedata.combining(c))
    return " ".join(folded.split()).lower()


def sent(course, key: str) -> list[Delivery]:
    """What went to the patient on the service's own initiative (not the answers to their texts)."""
    return [d for d in course.deliveries[key] if d.rule != "answer"]


def listing(deliveries) -> str:
    return "\n".join(f"  {d.at:%m-%d %H:%M} {d.channel} {d.rule} [{d.visit_ref}]" for d in deliveries) or "  (nothing)"


MOVES_CLAUSE = {"en": "more if a visit moves", "es": "más si una cita cambia"}


def documented_segment_promise() -> int:
    """The GSM-7 segments a text may take (in UCS-2: as many characters, SmsLength.fits)."""
    text = " ".join(MESSAGES_PAGE.read_text(encoding="utf-8").split())
    match = re.search(r"must stay within the same length in either encoding: (\w+) GSM-7 segments", text)
    assert match, "docs/messages.md: the promise of segments per text ('must stay within ... two GSM-7 segments') is gone"
    word = match.group(1).lower()
    return NUMBER_WORDS.get(word) or int(word)


def welcome_budget(welcome: str) -> int:
    """The most texts per visit the welcome promises: "about 3 per visit", "3 to 5 per visit",
    "de 3 a 5 por cita"."""
    match = re.search(r"([^.:;]{0,40})\b(?:per visit|por cita|por visita)", welcome)
    numbers = [int(n) for n in re.findall(r"\d+", match.group(1))] if match else []
    assert numbers, f"the welcome quotes no number of texts per visit: {welcome!r}"
    return max(numbers)


PATIENTS = [p.key for p in PEOPLE]


@pytest.mark.parametrize("key", PATIENTS)
class TestEveryStepArrives:
    def step(self, course, key, name, found, wanted: str):
        person = BY_KEY[key]
        assert found, (f"{key}, {name}: {wanted} did not arrive on any of {sorted(person.has)}; "
                       f"what arrived:\n{listing(sent(course, key))}")

    def by_visit(self, course, key, ref, *rules) -> list[Delivery]:
        return [d for d in sent(course, key) if d.visit_ref == ref and (not rules or d.rule.startswith(rules))]

    def test_first_infusion_preparation_72h_and_24h(self, course, key):
        self.step(course, key, "first infusion, 72 h", self.by_visit(course, key, MOVED, "first_induction_72h"),
                  "the full preparation 72 h before")
        fresh = self.by_visit(course, key, MOVED, "first_induction_24h")
        self.step(course, key, "first infusion, 24 h", fresh, "the 24-hour reminder")
        new_time = visit_start(BY_KEY[key], VISITS[0])
        assert all(new_time - timedelta(hours=25) <= d.at < new_time for d in fresh), (
            f"{key}, first infusion, 24 h: not sent the day before the new time:\n{listing(fresh)}")

    def test_a_24_hour_reminder_before_every_later_visit(self, course, key):
        for visit in VISITS[1:]:
            rule = "maintenance_24h" if visit.kind == "maintenance" else "induction_24h"
            found = self.by_visit(course, key, visit.ref, rule)
            self.step(course, key, f"visit {visit.ref}, 24 h", found, f"the 24-hour reminder ({rule})")

    def test_after_visit_cautions_before_every_visit(self, course, key):
        language = BY_KEY[key].language
        for ref in HELD:
            texts = [d for d in self.by_visit(course, key, ref) if d.at < visit_start(BY_KEY[key], _visit(ref))]
            found = [d for d in texts if NO_DRIVING[language].search(plain(d.body)) and NO_ALCOHOL.search(d.body)]
            self.step(course, key, f"visit {ref}, after-visit cautions", found,
                      "no driving until the next day and no alcohol or cannabis")

    def test_the_medications_note_in_full_before_the_first_infusion(self, course, key):
        person = BY_KEY[key]
        note = plain(MEDICATIONS[person.language])
        before = [d for d in sent(course, key) if d.at < visit_start(person, VISITS[0])]
        found = [d for d in before if note in plain(d.body)]
        self.step(course, key, "medications note", found, f"the note {MEDICATIONS[person.language]!r} in full")

    def test_the_medications_note_is_too_long_for_a_first_text(self, course, key):
        assert len(MEDICATIONS[BY_KEY[key].language]) > course.settings.sms_medications_max_chars

    def test_a_checkin_after_every_visit_held(self, course, key):
        for ref in HELD:
            found = self.by_visit(course, key, ref, "checkin")
            self.step(course, key, f"visit {ref}, check-in", found, "a check-in (mood and side effects)")
            assert all(d.at > visit_start(BY_KEY[key], _visit(ref)) for d in found), (
                f"{key}, visit {ref}, check-in: asked before the visit:\n{listing(found)}")

    def test_no_checkin_after_the_missed_visit(self, course, key):
        found = self.by_visit(course, key, MISSED, "checkin")
        assert not found, f"{key}, missed visit: a check-in asked how the visit went:\n{listing(found)}"

    def test_missed_visit_outreach_the_same_day(self, course, key):
        person = BY_KEY[key]
        found = self.by_visit(course, key, MISSED, "missed_visit")
        self.step(course, key, "missed visit, outreach", found, "'we missed you' for the missed infusion")
        day = visit_start(person, _visit(MISSED)).astimezone(ZoneInfo(person.zone)).date()
        assert all(d.at.astimezone(ZoneInfo(person.zone)).date() == day for d in found), (
            f"{key}, missed visit, outreach: not on the day of the visit:\n{listing(found)}")

    def test_a_staff_task_for_the_missed_visit(self, course, key):
        tasks = course.staff_tasks.get(key, [])
        assert len(tasks) == 1 and tasks[0][1], (
            f"{key}, missed visit, staff task: expected one open inbox item to call the patient, found {tasks}")

    def test_the_moved_visit_notice_then_a_fresh_24_hour_reminder(self, course, key):
        person = BY_KEY[key]
        notices = self.by_visit(course, key, MOVED, "visit_moved")
        self.step(course, key, "moved visit, notice", notices, "the notice of the new time")
        early = self.by_visit(course, key, MOVED, "first_induction_72h")
        assert early and early[0].at < notices[0].at, (
            f"{key}, moved visit: the scenario needs the 72-hour reminder to go before the move")
        words = MOVED_DAY_WORDS[person.language]
        driver = {"en": re.compile(r"adult|ride", re.I), "es": re.compile(r"adulto|transporte|regreso", re.I)}
        reminders = [d for d in self.by_visit(course, key, MOVED, "first_induction_24h") if d.at > notices[0].at]
        self.step(course, key, "moved visit, fresh 24 h", reminders, "a 24-hour reminder after the notice")
        for channel in sorted({d.channel for d in notices}):
            first = [d for d in notices if d.channel == channel and d.part == 1]
            assert first and words in first[0].body, (
                f"{key}, moved visit, notice by {channel}: does not name the new day ({words}):\n"
                + "\n".join(d.body for d in first))
            assert any(driver[person.language].search(d.body) for d in notices if d.channel == channel), (
                f"{key}, moved visit, notice by {channel}: no line about the ride home:\n"
                + "\n".join(d.body for d in notices if d.channel == channel))
        fresh = [d for d in reminders if d.part == 1]
        assert fresh and all(words in d.body for d in fresh), (
            f"{key}, moved visit, fresh 24 h: does not name the new day ({words}):\n" + listing(fresh))

    def test_questionnaires_before_the_first_last_and_maintenance_visits(self, course, key):
        for ref in (MOVED, SERIES_END.ref, MAINTENANCE.ref):
            found = self.by_visit(course, key, ref, "measures")
            self.step(course, key, f"visit {ref}, questionnaire", found, "the questionnaire link")

    def test_caring_contacts_after_the_series_until_maintenance_is_booked(self, course, key):
        person = BY_KEY[key]
        series_end = visit_start(person, SERIES_END) + timedelta(hours=1)
        booked = local(person, MAINTENANCE.booked_day, 12)
        contacts = [d for d in sent(course, key) if d.rule.startswith("caring_contact")]
        between = [d for d in contacts if series_end < d.at < booked]
        self.step(course, key, "caring contacts", between,
                  "a caring contact between the end of the series and the maintenance booking")
        after = [d for d in contacts if d.at >= booked]
        assert not after, f"{key}, caring contacts: still sent after maintenance was booked:\n{listing(after)}"


@pytest.mark.parametrize("key", PATIENTS)
class TestChannelsAndLimits:
    def test_nothing_went_by_a_channel_they_lack(self, course, key):
        person = BY_KEY[key]
        wrong = [d for d in course.deliveries[key] if d.channel not in person.has]
        assert not wrong, f"{key}, channels: sent by a channel the patient lacks:\n{listing(wrong)}"
        addresses = {"sms": person.phone, "email": person.email}
        stray = [d for d in course.deliveries[key] if d.to != addresses[d.channel]]
        assert not stray, f"{key}, channels: sent to another address:\n{listing(stray)}"

    def test_no_email_asks_a_patient_without_texts_to_reply_by_text(self, course, key):
        person = BY_KEY[key]
        if "sms" in person.has:
            return  # a patient with a phone may well reply to our text
        asking = [d for d in course.deliveries[key] if d.channel == "email"
                  and (REPLY_BY_TEXT[person.language].search(d.body) or REPLY_BY_TEXT["en"].search(d.body))]
        assert not asking, (f"{key}, replies: an email asks an email-only patient to answer by text:\n"
                            + "\n---\n".join(f"{d.rule}: {d.body}" for d in asking))

    def test_texts_per_visit_within_the_number_the_welcome_quotes(self, course, key):
        person = BY_KEY[key]
        texts = [d for d in sent(course, key) if d.channel == "sms"]
        if "sms" not in person.has:
            assert not texts, f"{key}, budget: texts went to a patient without a phone"
            return
        welcomes = [d for d in texts if d.rule == "welcome"]
        assert len(welcomes) == 1, f"{key}, welcome: {len(welcomes)} welcomes:\n{listing(welcomes)}"
        assert welcomes[0] == texts[0], f"{key}, welcome: not the first text:\n{listing(texts[:3])}"
        budget = welcome_budget(welcomes[0].body)
        setting = getattr(course.settings, "texts_per_visit", None)
        assert setting is None or budget == setting, (
            f"{key}, budget: the welcome quotes {budget} texts per visit, TEXTS_PER_VISIT is {setting}")
        # The welcome quotes the budget "more if a visit moves": a moved visit's notice is not counted.
        assert MOVES_CLAUSE[person.language] in welcomes[0].body, f"{key}, welcome: {welcomes[0].body!r}"
        per_visit = Counter(d.visit_ref for d in texts if d.visit_ref and not d.rule.startswith("caring_contact")
                            and d.rule != "visit_moved")
        over = {ref: n for ref, n in per_visit.items() if n > budget}
        assert not over, (
            f"{key}, budget: more texts than the welcome's {budget} per visit: {over}\n"
            + listing([d for d in texts if d.visit_ref in over]))

    def test_every_text_fits_the_segments_the_docs_promise(self, course, key):
        promise = documented_segment_promise()
        long = [(d, sms_length(d.body)) for d in course.deliveries[key] if d.channel == "sms"]
        long = [(d, size) for d, size in long if not size.fits(promise)]
        assert not long, f"{key}, segments: texts over {promise} segments:\n" + "\n".join(
            f"  {d.rule} [{d.visit_ref}] {size.encoding} {size.units} units, {size.segments} segments: {d.body!r}"
            for d, size in long)

    def test_a_second_text_comes_right_after_its_first(self, course, key):
        """What did not fit in one text follows it at once, with nothing else in between."""
        for channel in ("sms", "email"):
            stream = [d for d in course.deliveries[key] if d.channel == channel]
            for before, part in zip(stream, stream[1:]):
                if part.part > 1:
                    own = (part.rule, part.visit_ref, part.part - 1)
                    assert (before.rule, before.visit_ref, before.part) == own, (
                        f"{key}, second texts: {part.rule} [{part.visit_ref}] text {part.part} came after "
                        f"{before.rule} [{before.visit_ref}] text {before.part}, not right after its text {own[2]}")
                    assert part.at - before.at < timedelta(minutes=5), (
                        f"{key}, second texts: {part.rule} [{part.visit_ref}] text {part.part} came "
                        f"{part.at - before.at} after the text before it")

    def test_nothing_sent_in_quiet_hours(self, course, key):
        person, settings = BY_KEY[key], course.settings
        zone = ZoneInfo(person.zone)

        def at_night(d: Delivery) -> bool:
            clock = d.at.astimezone(zone).time()
            return clock >= settings.quiet_hours_start or clock < settings.quiet_hours_end

        night = [d for d in sent(course, key) if at_night(d)]
        assert not night, f"{key}, quiet hours: sent at night (local):\n" + listing(
            [Delivery(d.at.astimezone(zone), d.channel, d.to, d.body, rule=d.rule, visit_ref=d.visit_ref)
             for d in night])

    def test_nothing_sent_twice(self, course, key):
        rows = Counter(d.outbox_id for d in sent(course, key))
        twice = {row: n for row, n in rows.items() if n > 1}
        assert not twice, f"{key}, twice: outbox rows sent more than once: {twice}"
        same = Counter((d.rule, d.visit_ref, d.channel, d.part) for d in sent(course, key))
        again = {what: n for what, n in same.items() if n > 1}
        assert not again, f"{key}, twice: the same message for the same visit went more than once: {again}"


def test_the_patients_answered_their_checkins_and_the_course_ran_fast_enough(course):
    """The simulation itself: every patient answered something, and time jumped (no minute steps)."""
    for person in PEOPLE:
        assert course.replies[person.key], f"{person.key}: the simulated patient never answered anything"
    assert course.passes < 1500, f"{course.passes} passes: the clock is stepping instead of jumping"


def _visit(ref: str):
    return next(v for v in VISITS if v.ref == ref)
