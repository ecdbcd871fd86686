"""The triage reader, measured: the evaluation set in tests/data/triage_eval/ (scripts/crisis_eval.py)
by tier, category and language, on the part it is tuned on and on the part kept apart; and the
reader's behaviour on the texts that matter most, robustness included."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.triage import Context, Tier, assess, detect_language

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "crisis_eval.py"
_spec = importlib.util.spec_from_file_location("crisis_eval", _SCRIPT)
crisis_eval = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("crisis_eval", crisis_eval)  # dataclasses look their module up there
_spec.loader.exec_module(crisis_eval)

README = crisis_eval.DATA / "README.md"
RULES = Context(use_model=False)


def tier(text: str, **context) -> Tier:
    return assess(text, Context(use_model=False, **context)).tier


def alarming(text: str) -> bool:
    """Emergency or suicide risk: answered with 911 or 988 first, on-call paged."""
    return tier(text).rank >= Tier.SUICIDE_RISK.rank


@pytest.fixture(scope="module")
def main_rows():
    return crisis_eval.load("main")


@pytest.fixture(scope="module")
def heldout_rows():
    return crisis_eval.load("heldout")


@pytest.fixture(scope="module")
def main_result(main_rows):
    return crisis_eval.evaluate(main_rows)


@pytest.fixture(scope="module")
def heldout_result(heldout_rows):
    return crisis_eval.evaluate(heldout_rows)


# ---------------------------------------------------------------- the evaluation set

def _categories() -> dict[str, set[str]]:
    """The categories per tier, as the set's README lists them."""
    text = README.read_text(encoding="utf-8")
    out = {}
    for tier_name in ("emergency", "suicide_risk", "urgent", "routine"):
        m = re.search(rf"^- {tier_name}: (.+?)\.\n(?=- |\n)", text, re.M | re.S)
        names = re.sub(r"\([^)]*\)", "", " ".join(m[1].split()))
        out[tier_name] = {n.strip() for n in names.split(",")}
    return out


def test_the_set_holds_3000_labelled_texts_in_english_and_spanish(main_rows, heldout_rows):
    rows = main_rows + heldout_rows
    assert len(rows) >= 3000
    languages = Counter(r.language for r in rows)
    assert languages["en"] >= 2500 and languages["es"] >= 1300
    assert {r.tier for r in rows} == set(Tier)


def test_every_row_names_a_known_tier_and_a_category_of_its_tier(main_rows, heldout_rows):
    categories = _categories()
    for row in main_rows + heldout_rows:
        assert row.category == "follow-up" or row.category in categories[row.tier.value], row
        context = row.context_dict
        assert set(context) <= {"escalation", "sender", "asked"}, row
        if row.category == "follow-up":
            assert context.get("escalation") in ("emergency", "suicide_risk", "urgent"), row


def test_every_category_of_every_alerting_tier_is_in_both_languages_in_both_parts(main_rows, heldout_rows):
    categories = _categories()
    for rows in (main_rows, heldout_rows):
        for language in ("en", "es"):
            for tier_name in ("emergency", "suicide_risk", "urgent"):
                found = {r.category for r in rows if r.language == language and r.tier.value == tier_name}
                assert categories[tier_name] <= found, (language, tier_name, categories[tier_name] - found)


def test_the_set_has_follow_ups_and_texts_from_unknown_numbers(main_rows, heldout_rows):
    for rows in (main_rows, heldout_rows):
        assert sum(r.category == "follow-up" for r in rows) >= 40
        assert sum(r.context_dict.get("sender") == "unknown" for r in rows) >= 15


def test_no_held_out_text_is_in_the_part_the_reader_is_tuned_on(main_rows, heldout_rows):
    tuned = {(r.language, r.text.lower().strip(), r.context) for r in main_rows}
    assert not [r.text for r in heldout_rows if len(r.text) > 3 and (r.language, r.text.lower().strip(), r.context)
                in tuned]


def test_the_ordinary_texts_include_the_idioms_that_trip_word_lists(main_rows):
    ordinary = {r.text for r in main_rows if r.tier is Tier.ROUTINE}
    for idiom in ("this traffic is killing me", "dying to know my results", "dead tired today",
                  "I could kill for a coffee", "my phone died", "me muero de hambre", "me mata el tráfico"):
        assert idiom in ordinary


# ---------------------------------------------------------------- the figures
# The targets are the script's: 99 % for emergency and suicide risk in every category of every
# language, 95 % for urgent, at most 2 % of routine texts raised to emergency or suicide risk.
# The main part (tuned on) meets them. The held-out part does not: its floors hold the figures
# reached so far (rules and model: emergency 92 %, suicide risk 85 %, urgent 94 %, routine raised
# 6 %; someone is paged for 99 % of its emergencies and 94 % of its suicide-risk texts), so
# that a change cannot quietly lose ground. Its later files (voices-*, young-*: older adults,
# caregivers, young adults' slang, regional Spanish) were written after the reader was tuned and
# are the hardest. The README's Triage section says what is still missed.

HELDOUT_FLOORS = {Tier.EMERGENCY: 0.91, Tier.SUICIDE_RISK: 0.84, Tier.URGENT: 0.93}
HELDOUT_FALSE_ALARM_CEILING = 0.07


def test_the_main_part_meets_every_target_in_every_category_and_language(main_result):
    assert main_result.failures() == [], crisis_eval.report("main", main_result, True)


def test_the_held_out_part_holds_its_floors(heldout_result):
    for level, floor in HELDOUT_FLOORS.items():
        assert heldout_result.tier_recall(level).rate >= floor, crisis_eval.report("held-out", heldout_result, False)
    for language, tally in heldout_result.false_alarms.items():
        assert tally.rate <= HELDOUT_FALSE_ALARM_CEILING, crisis_eval.report("held-out", heldout_result, False)


def test_the_script_prints_the_matrix_recall_by_category_and_both_parts(capsys, monkeypatch, main_rows, heldout_rows,
                                                                      main_result, heldout_result):
    # The module has read and measured both parts once already: the script prints those results.
    parts = {"main": main_rows, "heldout": heldout_rows}
    results = {id(main_rows): main_result, id(heldout_rows): heldout_result}
    monkeypatch.setattr(crisis_eval, "load", parts.__getitem__)
    monkeypatch.setattr(crisis_eval, "evaluate", lambda rows, use_model=True: results[id(rows)])
    crisis_eval.main(["--quiet"])
    out = capsys.readouterr().out
    assert "Confusion matrix" in out and "Held-out part" in out and "Main part" in out
    assert "suicide_risk  all:" in out and "raised to emergency or suicide risk" in out


# ---------------------------------------------------------------- the issue's examples, by tier

@pytest.mark.parametrize("text, expected", [
    ("Thank you for everything... I won't be needing any more appointments after this.", Tier.SUICIDE_RISK),
    ("it's ok. I've made my peace.", Tier.SUICIDE_RISK),
    ("I'm giving my guitar and my books to my nephew... he'll take better care of them", Tier.SUICIDE_RISK),
    ("took a couple extra of my sleeping pills... feel really out of it", Tier.EMERGENCY),
    ("Vicodin and xanax mixed", Tier.EMERGENCY),
    ("I took 3 of my clonazepam and had 4 beers", Tier.EMERGENCY),
    ("my lips are swelling and my throat feels tight", Tier.EMERGENCY),
    ("tome demasiadas pastillas", Tier.EMERGENCY),
    ("can I take my klonopin tonight?", Tier.URGENT),
    ("172/104 with a pounding headache", Tier.URGENT),
    ("still can't keep water down", Tier.URGENT),
    ("me desmaye... me pegue en la cabeza", Tier.EMERGENCY),
    ("if this doesn't work I don't know what I'll do", Tier.SUICIDE_RISK),
    ("😢😢", Tier.URGENT),
    ("🔫", Tier.SUICIDE_RISK),
    ("about to swallow all my sleeping pills", Tier.SUICIDE_RISK),
    ("I'm going to take every pill I have", Tier.SUICIDE_RISK),
    ("kіll myself", Tier.SUICIDE_RISK),  # a Cyrillic і
])
def test_the_issues_examples_get_their_tier(text, expected):
    assert tier(text).rank >= expected.rank, assess(text, RULES)


def test_a_worried_relative_from_an_unknown_number_pages_on_call():
    text = "my wife Rosa had her infusion yesterday and she's not answering her phone"
    assert tier(text, unknown_sender=True) is Tier.URGENT


def test_3_kind_of_numb_is_a_score_not_a_stroke():
    assert tier("3. kind of numb", asked="mood", score=3) is Tier.ROUTINE


def test_an_overdose_is_an_emergency_with_poison_control():
    triage = assess("tome demasiadas pastillas", RULES)
    assert triage.tier is Tier.EMERGENCY and triage.poison_control


# ---------------------------------------------------------------- context

def test_a_follow_up_to_a_medical_escalation_keeps_its_kind_and_adds():
    triage = assess("now it's radiating down my left arm", Context(escalation="emergency", use_model=False))
    assert (triage.tier, triage.follow_up, triage.adds) == (Tier.EMERGENCY, True, True)
    plain = assess("i have the pills here", Context(escalation="suicide_risk", use_model=False))
    assert (plain.tier, plain.adds) == (Tier.SUICIDE_RISK, True)


@pytest.mark.parametrize("text", ["thanks", "gracias", "Who is this?", "ok", "ok thank you", "¿quién es?"])
def test_thanks_or_who_is_this_during_an_escalation_only_acknowledges(text):
    triage = assess(text, Context(escalation="emergency", use_model=False))
    assert triage.acknowledgement_only and triage.tier is Tier.ROUTINE


def test_i_am_not_going_to_call_anyone_adds_to_the_escalation():
    triage = assess("I'm not going to call anyone", Context(escalation="suicide_risk", use_model=False))
    assert triage.adds and triage.tier is Tier.SUICIDE_RISK


def test_a_graver_follow_up_raises_the_tier():
    triage = assess("i just took them all", Context(escalation="suicide_risk", use_model=False))
    assert triage.tier is Tier.EMERGENCY and triage.follow_up


def test_a_low_mood_score_is_suicide_risk_only_when_a_mood_was_asked():
    assert tier("2", asked="mood", score=2) is Tier.SUICIDE_RISK
    assert tier("2", asked="pain") is Tier.ROUTINE
    assert tier("cero", asked="questionnaire") is Tier.ROUTINE


# ---------------------------------------------------------------- what stays routine

@pytest.mark.parametrize("text", [
    "this traffic is killing me", "dying to know", "dead tired", "I could kill for a coffee", "my phone died",
    "the suspense is killing me", "lol I'm dead", "me muero de hambre", "me mata el tráfico",
    "estoy muerta de cansancio", "goodbye for now, see you next week", "I took my pills this morning",
    "6/10 felt floaty but ok", "bp was 140/90 this morning", "cut my finger cooking lol", "see you tuesday",
    "what time do I stop eating?", "can my husband drive me home?", "thanks!", "C",
])
def test_everyday_texts_stay_routine(text):
    assert tier(text) is Tier.ROUTINE, assess(text, RULES)


@pytest.mark.parametrize("crisis, ordinary", [
    ("i won't be around for my next appointment", "i won't be around for my next appointment, i'm traveling"),
    ("i'll be gone before friday", "i'll be gone next week on vacation"),
    ("no voy a estar para la proxima cita", "no voy a estar el martes, estoy de viaje"),
])
def test_saying_one_will_not_be_here_is_a_crisis_unless_the_text_speaks_of_a_trip(crisis, ordinary):
    assert alarming(crisis) and not alarming(ordinary)


@pytest.mark.parametrize("text, expected", [
    ("i od'd on heroin in 2016, clean since", Tier.ROUTINE),
    ("overdosed in 2018, doing great now", Tier.ROUTINE),
    ("od'd in 2016, clean since, but i od'd last night", Tier.EMERGENCY),
    ("od'd years ago, doing good, btw took 30 xanax just now", Tier.EMERGENCY),
    ("od'd in 2016 and im fine now, but i just od'd again", Tier.EMERGENCY),
    ("ODing rn", Tier.EMERGENCY),
])
def test_an_overdose_told_as_long_past_by_someone_well_now_is_history_but_one_now_is_not(text, expected):
    assert tier(text) is expected


def test_a_medical_word_about_the_past_is_history_unless_it_is_happening_now():
    assert tier("i had a seizure years ago, is ketamine ok?") is Tier.ROUTINE
    assert tier("i had a seizure years ago and i'm having one now") is Tier.EMERGENCY
    assert tier("i tried to kill myself years ago") is Tier.SUICIDE_RISK


def test_an_idiom_does_not_hide_a_crisis_in_the_same_text():
    assert alarming("my phone died and honestly i want to die too")
    assert alarming("dying to know if anyone would even miss me")
    assert alarming("me muero de hambre y ya no quiero vivir")


@pytest.mark.parametrize("text", ["my bp is 180/110", "bp 185 over 115", "presion 190 sobre 120",
                                  "blood pressure 200", "chest pain since the infusion", "i fainted",
                                  "can't breathe", "my wife had a seizure", "me duele el pecho"])
def test_a_medical_emergency_is_its_own_tier(text):
    assert tier(text) is Tier.EMERGENCY


@pytest.mark.parametrize("text", ["bp 150/95", "bp 165/102", "3/10", "see you on 12/10"])
def test_a_pressure_below_180_over_110_without_symptoms_and_dates_are_not_an_emergency(text):
    assert tier(text) is not Tier.EMERGENCY


def test_the_alert_level_is_the_clinics():
    assert tier("bp 152/90 and a headache", bp_alert=(150, 95)) is Tier.URGENT
    assert tier("bp 152/90 and a headache") is Tier.ROUTINE


# ---------------------------------------------------------------- language

@pytest.mark.parametrize("text, language", [
    ("me quiero morir", "es"), ("toy muy mal, no aguanto", "es"), ("¿a qué hora es mi cita?", "es"),
    ("gracias", "es"), ("PARAR", "es"), ("I want to die", "en"), ("see you tuesday", "en"),
    ("7", "en"), ("", "en"), ("👍", "en"), ("STOP", "en"),
])
def test_the_language_detector_returns_a_code(text, language):
    assert detect_language(text) == language


def test_the_language_detector_tells_the_languages_of_the_set_apart(main_rows):
    worded = [r for r in main_rows if len(re.findall(r"[^\W\d_]{2,}", r.text)) >= 3]
    wrong = [r.text for r in worded if detect_language(r.text) != r.language]
    assert len(wrong) <= len(worded) * 0.04, wrong[:40]


# ---------------------------------------------------------------- robustness

@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=2000))
def test_the_reader_never_raises_and_gives_a_tier(text):
    triage = assess(text)
    assert triage.tier in set(Tier) and isinstance(triage.reasons, tuple)
    assert detect_language(text) in ("en", "es")


@settings(max_examples=15, deadline=None)
@given(st.lists(st.sampled_from([
    "i", "want", "to", "die", "not", "my", "rope", "how", "many", "pills", "took", "40", "of", "1/10",
    "180/110", "dying", "if", "was", "goodbye", "k1ll", "s", "u", "me", "quiero", "morir", "de", "no",
    "\x00", "🙂", "ｷ", "\u200b", "!!!", "a" * 50, "'", "/", "-",
]), min_size=500, max_size=2500))
def test_long_adversarial_texts_are_read_in_bounded_time(words):
    text = " ".join(words)[:10_000]
    start = time.perf_counter()
    assess(text)
    assert time.perf_counter() - start < 10  # catastrophic backtracking would take minutes


@pytest.mark.parametrize("text", [
    "a" * 10_000, "a " * 5_000, "\x00" * 10_000, "🙂" * 10_000, "i " * 5_000, "not " * 2_500,
    "want to " * 1_250, "how many " * 1_100, "1/10 " * 2_000, "took 5 " * 1_400, "s u i c i d e " * 700,
    "if i was " * 1_100, "dying to " * 1_100, "(" * 10_000, "\\" * 10_000, "\ud7ff" * 10_000,
], ids=lambda text: repr(text[:12]))
def test_ten_thousand_character_texts_are_read_in_bounded_time(text):
    start = time.perf_counter()
    assert assess(text).tier in set(Tier)
    assert time.perf_counter() - start < 10


def test_a_crisis_at_the_end_of_a_long_text_is_still_found():
    assert alarming("ok " * 3_000 + "i have the rope ready")
