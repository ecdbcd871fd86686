"""The pure readers behind issue 9's replies: side effects and blood pressures, office hours, the
OFFICE_DAYS setting, and the keyword tables. No database, no clock."""
from __future__ import annotations

from datetime import time

import pytest

from reminders.config import Settings, parse_days
from reminders.inbound.office_hours import OfficeHours, when_read
from reminders.inbound.parsing import KEYWORDS, read_reply
from reminders.inbound.inbox_rank import flag_reasons
from reminders.inbound.symptoms import read_flags, sounds_well
from tests.conftest import at

NY = "America/New_York"
HOURS = OfficeHours(time(8, 0), time(17, 0), ("mon", "tue", "wed", "thu", "fri"), NY)


@pytest.mark.parametrize("text, effects", [
    ("7 but my BP was 160/100 at home", ("blood pressure",)),
    ("4 out of 10 and the nightmares are back", ("nightmares",)),
    ("Pretty good, like a 7. Bit of a headache and nauseous in the car", ("nausea", "headache")),
    ("still dizzy and can't stop throwing up", ("vomiting", "dizziness")),
    ("felt really floaty and sick after", ("nausea", "dissociation")),
    ("un 6, con dolor de cabeza", ("headache",)),
    ("mareada y con ganas de vomitar", ("nausea", "dizziness")),
    ("tuve pesadillas", ("nightmares",)),
    ("8, no side effects", ()),
    ("7 no nausea this time", ()),
    ("6, headache is gone now", ()),
    ("sin mareo, un 8", ()),
    ("can't make it tomorrow, sick kid", ()),
    ("Feeling great! Best day in years", ()),
])
def test_side_effects_are_read_and_a_no_before_them_is_respected(text, effects):
    assert read_flags(text).side_effects == effects


@pytest.mark.parametrize("text, pressures", [
    ("my BP was 160/100 at home", ((160, 100),)),
    ("bp 152 over 88", ((152, 88),)),
    ("presion 150/95", ((150, 95),)),
    ("7/10", ()), ("8 out of 10", ()), ("12/8 appointment", ()),
])
def test_blood_pressures_are_told_from_scores_and_dates(text, pressures):
    assert read_flags(text).pressures == pressures


def test_a_reading_at_either_threshold_is_a_red_flag_and_a_normal_one_is_not():
    settings = Settings(bp_alert_systolic=160, bp_alert_diastolic=100)
    assert flag_reasons(read_flags("bp 160/90"), settings) == ["blood pressure 160/90"]
    assert flag_reasons(read_flags("bp 140/100"), settings) == ["blood pressure 140/100"]
    assert flag_reasons(read_flags("bp 128/82, all good"), settings) == []
    assert flag_reasons(read_flags("my blood pressure felt high"), settings) == ["side effects: blood pressure"]


@pytest.mark.parametrize("text, question", [
    ("is it normal to feel tired?", True), ("Can I drive tomorrow", True), ("How long does the dizziness last", True),
    ("¿es normal tener mareo?", True), ("7?", False), ("idk 5ish?", False), ("what a day", False),
    ("7, feeling good", False),
])
def test_questions(text, question):
    assert read_flags(text).question is question


@pytest.mark.parametrize("text, good", [
    ("Feeling great! Best day in years", True), ("muy bien, gracias", True),
    ("not great", False), ("good but dizzy", False), ("better, is that normal?", False),
])
def test_good_news_in_words(text, good):
    assert sounds_well(text) is good


@pytest.mark.parametrize("now, language, says", [
    ("2026-12-08T15:00:00-05:00", "en", "today"),                 # Tuesday afternoon
    ("2026-12-08T07:30:00-05:00", "en", "today at 8 AM"),         # before opening
    ("2026-12-08T19:30:00-05:00", "en", "tomorrow at 8 AM"),
    ("2026-12-11T17:00:00-05:00", "en", "Monday at 8 AM"),        # Friday at closing time
    ("2026-12-12T11:00:00-05:00", "en", "Monday at 8 AM"),        # Saturday
    ("2026-12-13T23:59:00-05:00", "en", "tomorrow at 8 AM"),      # Sunday night
    ("2026-12-08T19:30:00-05:00", "es", "mañana a las 8:00"),
    ("2026-12-11T18:00:00-05:00", "es", "el lunes a las 8:00"),
    ("2026-12-09T00:30:00+00:00", "en", "tomorrow at 8 AM"),      # UTC past midnight is still Tuesday in NY
])
def test_when_a_nurse_reads_a_flagged_reply(now, language, says):
    assert when_read(HOURS, at(now), language) == says


def test_office_hours_with_half_hours_and_a_saturday():
    hours = OfficeHours(time(9, 30), time(13, 0), ("mon", "sat"), NY)
    assert when_read(hours, at("2026-12-08T10:00:00-05:00")) == "Saturday at 9:30 AM"


@pytest.mark.parametrize("value, days", [
    ("mon-fri", ["mon", "tue", "wed", "thu", "fri"]), ("mon,wed,fri", ["mon", "wed", "fri"]),
    ("Mon-Fri, Sat", ["mon", "tue", "wed", "thu", "fri", "sat"]), ("monday-tuesday", ["mon", "tue"]),
])
def test_office_days_setting(value, days):
    assert parse_days(value) == days
    assert Settings(office_days=value).office_days == days


@pytest.mark.parametrize("value", ["fri-mon", "someday", "mon-xyz"])
def test_a_bad_office_days_setting_stops_with_the_reason(value):
    with pytest.raises(ValueError, match="OFFICE_DAYS"):
        Settings(office_days=value)


def test_every_language_has_the_same_keyword_kinds():
    kinds = {frozenset(table) for table in KEYWORDS.values()}
    assert len(kinds) == 1 and {"opt_out", "help", "confirm", "reschedule", "numbers"} <= set(KEYWORDS["en"])
    assert all(len(table["numbers"]) == 11 for table in KEYWORDS.values())


@pytest.mark.parametrize("text, kind", [
    ("SÍ", "confirm"), ("si", "confirm"), ("Confirmo", "confirm"), ("ahí estaré", "confirm"),
    ("CAMBIAR", "reschedule"), ("necesito cancelar la cita", "reschedule"), ("no puedo ir mañana", "reschedule"),
    ("AYUDA", "help"), ("PARAR", "stop"), ("ALTO", "stop"), ("CANCELAR", "stop"), ("gracias", "ack"),
    ("vale", "ack"), ("nos vemos", "soft_confirm"), ("YES", "start"), ("I need to cancel", "reschedule"),
    ("I don't need to cancel", "free_text"), ("CANCEL", "stop"), ("cancel please", "free_text"),
])
def test_keywords_in_both_languages(text, kind):
    assert read_reply(text).kind == kind
