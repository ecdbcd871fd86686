"""The crisis reader, measured: recall and false alarms on the evaluation set in
tests/data/crisis_eval/ (see scripts/crisis_eval.py), the examples patients' texts were
missed on, the medical/suicidal split and Spanish detection the replies use, and robustness."""
from __future__ import annotations

import importlib.util
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.inbound.parsing import CRISIS_LABELS, crisis_kind, detect_crisis, looks_spanish, read_reply

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "crisis_eval.py"
_spec = importlib.util.spec_from_file_location("crisis_eval", _SCRIPT)
crisis_eval = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("crisis_eval", crisis_eval)  # dataclasses look their module up there
_spec.loader.exec_module(crisis_eval)

CATEGORIES = {
    "wish to be dead", "thoughts of suicide", "method or means", "intent and plan", "preparation",
    "attempt or overdose", "self-harm", "hopelessness", "burdensomeness", "low score", "medical emergency",
}


@pytest.fixture(scope="module")
def main_rows():
    return crisis_eval.load(crisis_eval.MAIN_FILES)


@pytest.fixture(scope="module")
def dev_rows():
    return crisis_eval.load(crisis_eval.DEV_FILES)


# ---------------------------------------------------------------- the evaluation set

def test_the_evaluation_set_has_400_crisis_and_400_ordinary_texts_in_english_and_spanish(main_rows):
    counts = Counter((r.language, r.crisis) for r in main_rows)
    assert counts[("en", True)] + counts[("es", True)] >= 400
    assert counts[("en", False)] + counts[("es", False)] >= 400
    assert min(counts[("en", True)], counts[("en", False)]) >= 250
    assert min(counts[("es", True)], counts[("es", False)]) >= 130


def test_every_crisis_category_is_covered_in_both_languages_in_the_main_and_the_dev_set(main_rows, dev_rows):
    for rows in (main_rows, dev_rows):
        for language in ("en", "es"):
            assert {r.category for r in rows if r.crisis and r.language == language} == CATEGORIES


def test_no_crisis_text_of_the_dev_set_is_in_the_main_set(main_rows, dev_rows):
    main = {(r.language, r.text.lower()) for r in main_rows if len(r.text) > 3}
    assert not [r.text for r in dev_rows if r.crisis and (r.language, r.text.lower()) in main]


def test_the_ordinary_texts_include_the_idioms_that_trip_word_lists(main_rows):
    ordinary = {r.text for r in main_rows if not r.crisis}
    for idiom in ("this traffic is killing me", "dying to know my results", "dead tired today",
                  "I could kill for a coffee", "my phone died", "the suspense is killing me", "lol I'm dead",
                  "me muero de hambre", "me mata el tráfico", "estoy muerta de cansancio"):
        assert idiom in ordinary


# ---------------------------------------------------------------- the targets

def test_the_reader_catches_99_percent_of_each_category_in_each_language_with_at_most_5_percent_false_alarms(
        main_rows):
    result = crisis_eval.evaluate(main_rows)
    assert result.failures() == [], crisis_eval.report("Main set", result)


def test_the_reader_catches_at_least_95_percent_of_the_dev_set_it_was_not_tuned_on(dev_rows):
    result = crisis_eval.evaluate(dev_rows)
    for language, tally in result.recall_by_language().items():
        assert tally.rate >= 0.95, crisis_eval.report("Dev set", result)
    for language, tally in result.false_alarms.items():
        assert tally.rate <= 0.10, crisis_eval.report("Dev set", result)


def test_a_low_score_counts_as_caught_when_the_score_path_escalates_it():
    row = crisis_eval.Row("2/10", True, "low score", "en")
    assert detect_crisis(row.text) == () and crisis_eval.caught(row)
    assert not crisis_eval.caught(crisis_eval.Row("7/10", True, "low score", "en"))


def test_the_script_exits_zero_when_the_targets_are_met(capsys):
    assert crisis_eval.main(["--quiet"]) == 0
    out = capsys.readouterr().out
    assert "Main set" in out and "Dev set" in out and "false alarms" in out


# ---------------------------------------------------------------- the texts that used to pass unflagged

@pytest.mark.parametrize("text", [
    "I have the rope ready", "I bought a gun this morning", "planning to jump",
    "going to drive my car off the bridge", "wrote letters to my kids, saying goodbye",
    "everyone would be happier if I was gone", "looking up how many of my pills it would take",
])
def test_means_preparation_burdensomeness_and_research_are_flagged(text):
    assert detect_crisis(text)
    assert crisis_kind(detect_crisis(text)) == "suicidal"


@pytest.mark.parametrize("text", ["no quiero vivir", "me quiero morir", "me quiero matar", "ya no aguanto más"])
def test_spanish_crisis_texts_are_flagged(text):
    assert detect_crisis(text)
    assert read_reply(text).crisis_terms == detect_crisis(text)


@pytest.mark.parametrize("text", ["toy mal, kiero morirme", "q ganas de matarme", "me kiero matar xq ya no aguanto",
                                  "ya no kiero vivir la neta", "no aguanto mas, x favor ayuda"])
def test_spanish_texting_shorthand_is_read(text):
    assert detect_crisis(text)


@pytest.mark.parametrize("crisis, ordinary", [
    ("i won't be around for my next appointment", "i won't be around for my next appointment, i'm traveling"),
    ("i'll be gone before friday", "i'll be gone next week on vacation"),
    ("no voy a estar para la proxima cita", "no voy a estar el martes, estoy de viaje"),
])
def test_saying_one_will_not_be_here_is_a_crisis_unless_the_text_speaks_of_a_trip(crisis, ordinary):
    assert detect_crisis(crisis)
    assert detect_crisis(ordinary) == ()


def test_a_medical_word_about_the_past_is_history_unless_it_is_happening_now():
    assert detect_crisis("i had a seizure years ago, is ketamine ok?") == ()
    assert crisis_kind(detect_crisis("i had a seizure years ago and i'm having one now")) == "medical"
    assert crisis_kind(detect_crisis("i tried to kill myself years ago")) == "suicidal"


def test_an_idiom_does_not_hide_a_crisis_in_the_same_text():
    assert detect_crisis("my phone died and honestly i want to die too")
    assert detect_crisis("dying to know if anyone would even miss me")
    assert detect_crisis("me muero de hambre y ya no quiero vivir")


@pytest.mark.parametrize("text", ["not sure I want to live", "I don't want to die but I can't keep doing this",
                                  "i dont want to die", "ngl i wanna kms rn", "idk if i can keep myself safe tonight"])
def test_negation_does_not_hide_a_crisis(text):
    assert detect_crisis(text)


@pytest.mark.parametrize("text", [
    "this traffic is killing me", "dying to know", "dead tired", "I could kill for a coffee", "my phone died",
    "the suspense is killing me", "lol I'm dead", "me muero de hambre", "me mata el tráfico",
    "estoy muerta de cansancio", "goodbye for now, see you next week", "I took my pills this morning",
    "6/10 felt floaty but ok", "bp was 140/90 this morning", "cut my finger cooking lol",
])
def test_everyday_idioms_are_not_a_crisis(text):
    assert detect_crisis(text) == ()


@pytest.mark.parametrize("text", ["my bp is 180/110", "bp 185 over 115", "presion 190 sobre 120",
                                  "blood pressure 200", "chest pain since the infusion", "i fainted",
                                  "can't breathe", "my wife had a seizure", "me duele el pecho"])
def test_a_medical_emergency_is_its_own_kind(text):
    assert "medical emergency" in detect_crisis(text)
    assert crisis_kind(detect_crisis(text)) == "medical"


@pytest.mark.parametrize("text", ["bp 150/95", "bp 160/100, a bit of a headache", "3/10", "see you on 12/10"])
def test_a_pressure_below_180_over_110_and_dates_are_not_an_emergency(text):
    assert "medical emergency" not in detect_crisis(text)


def test_a_suicidal_crisis_wins_over_a_medical_one_and_nothing_is_no_kind():
    assert crisis_kind(detect_crisis("my chest hurts and i want to die")) == "suicidal"
    assert crisis_kind(("medical emergency", "overdose")) == "suicidal"
    assert crisis_kind(()) is None
    assert crisis_kind(detect_crisis("see you tuesday")) is None


@pytest.mark.parametrize("text, spanish", [
    ("me quiero morir", True), ("toy muy mal, no aguanto", True), ("¿a qué hora es mi cita?", True),
    ("gracias", True), ("PARAR", True), ("I want to die", False), ("see you tuesday", False),
    ("7", False), ("", False), ("👍", False), ("STOP", False),
])
def test_looks_spanish(text, spanish):
    assert looks_spanish(text) is spanish


def test_looks_spanish_tells_the_languages_of_the_evaluation_set_apart(main_rows):
    worded = [r for r in main_rows if len(re.findall(r"[^\W\d_]{2,}", r.text)) >= 2]
    wrong = [r.text for r in worded if looks_spanish(r.text) != (r.language == "es")]
    assert len(wrong) <= len(worded) * 0.02, wrong


# ---------------------------------------------------------------- robustness

@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_the_reader_never_raises_and_gives_known_labels(text):
    terms = detect_crisis(text)
    assert isinstance(terms, tuple) and set(terms) <= set(CRISIS_LABELS)
    assert crisis_kind(terms) in (None, "medical", "suicidal")
    assert isinstance(looks_spanish(text), bool)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from([
    "i", "want", "to", "die", "not", "my", "rope", "how", "many", "pills", "took", "40", "of", "1/10",
    "180/110", "dying", "if", "was", "goodbye", "k1ll", "s", "u", "me", "quiero", "morir", "de", "no",
    "\x00", "🙂", "ｷ", "\u200b", "!!!", "a" * 50, "'", "/", "-",
]), min_size=500, max_size=2500))
def test_long_adversarial_texts_are_read_in_bounded_time(words):
    text = " ".join(words)[:10_000]
    start = time.perf_counter()
    detect_crisis(text)
    assert time.perf_counter() - start < 10  # catastrophic backtracking would take minutes


@pytest.mark.parametrize("text", [
    "a" * 10_000, "a " * 5_000, "\x00" * 10_000, "🙂" * 10_000, "i " * 5_000, "not " * 2_500,
    "want to " * 1_250, "how many " * 1_100, "1/10 " * 2_000, "took 5 " * 1_400, "s u i c i d e " * 700,
    "if i was " * 1_100, "dying to " * 1_100, "(" * 10_000, "\\" * 10_000, "\ud7ff" * 10_000,
], ids=lambda text: repr(text[:12]))
def test_ten_thousand_character_texts_are_read_in_bounded_time(text):
    start = time.perf_counter()
    assert isinstance(detect_crisis(text), tuple)
    assert time.perf_counter() - start < 10  # catastrophic backtracking would take minutes


def test_a_crisis_at_the_end_of_a_long_text_is_still_found():
    assert detect_crisis("ok " * 3_000 + "i have the rope ready")
