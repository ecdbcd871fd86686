"""The questionnaires as patients and staff meet them: wording, totals, bands, the safety item,
the SMS screener, response and remission."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from reminders.scales import (
    DEFINITIONS, DefinitionError, IncompleteAnswers, InvalidAnswer, all_scales, band, change_from_baseline,
    get_scale, items_to_ask, load_scales, remission, response, result, safety_items_raised, scale_keys_for,
    score, screen_positive,
)

PHQ9 = get_scale("phq9")
GAD7 = get_scale("gad7")
PCL5 = get_scale("pcl5")
PAIN = get_scale("pain")


def every(scale, value):
    return {n: value for n in scale.numbers}


# ---------------------------------------------------------------- the definitions

def test_the_four_scales_come_in_the_clinics_order():
    assert list(all_scales()) == ["phq9", "gad7", "pcl5", "pain"]
    assert [len(s.items) for s in all_scales().values()] == [9, 7, 20, 1]
    assert [s.max_score for s in all_scales().values()] == [27, 21, 80, 10]


@pytest.mark.parametrize("key", ["phq9", "gad7", "pcl5", "pain"])
def test_every_item_option_and_band_reads_in_english_and_spanish(key):
    scale = get_scale(key)
    for item in scale.items:
        assert item.text("en") and item.text("es") and item.text("en") != item.text("es"), item.number
    assert all(option.text("en") and option.text("es") for option in scale.options)
    assert all(b.label("en") and b.label("es") for b in scale.bands)
    assert scale.title.text("es") != scale.title.text("en")
    assert scale.source


def test_patients_read_the_published_wording():
    assert PHQ9.instructions.text("en") == (
        "Over the last 2 weeks, how often have you been bothered by any of the following problems?")
    assert PHQ9.item(2).text("es") == "Se ha sentido decaído(a), deprimido(a) o sin esperanzas"
    assert PHQ9.item(9).text("en") == "Thoughts that you would be better off dead or of hurting yourself in some way"
    assert [o.text("es") for o in PHQ9.options_for(1)] == [
        "Ningún día", "Varios días", "Más de la mitad de los días", "Casi todos los días"]
    assert GAD7.item(1).text("en") == "Feeling nervous, anxious, or on edge"
    assert PCL5.item(1).text("en") == "Repeated, disturbing, and unwanted memories of the stressful experience?"
    assert [o.text("en") for o in PCL5.options] == ["Not at all", "A little bit", "Moderately", "Quite a bit", "Extremely"]
    assert PAIN.item(1).text("en") == "In the past 7 days, how would you rate your pain on average?"
    assert (PAIN.options[0].text("en"), PAIN.options[-1].text("en")) == ("0 No pain", "10 Worst pain imaginable")


def test_an_unknown_language_falls_back_to_english():
    assert PHQ9.item(1).text("fr") == PHQ9.item(1).text("en") == "Little interest or pleasure in doing things"
    assert PHQ9.item(1).text("es-US") == "Poco interés o placer en hacer cosas"
    assert PHQ9.text("de").startswith("Patient Health Questionnaire (PHQ-9)\nOver the last 2 weeks")


def test_only_phq9_item_9_is_a_safety_item():
    assert {key: s.safety_items for key, s in all_scales().items()} == {
        "phq9": (9,), "gad7": (), "pcl5": (), "pain": ()}


def test_the_phq9_difficulty_question_is_kept_apart_from_the_score():
    assert PHQ9.extra.text("en").startswith("If you checked off any problems, how difficult")
    assert [o.text("es") for o in PHQ9.extra.options] == [
        "No ha sido difícil", "Un poco difícil", "Muy difícil", "Extremadamente difícil"]
    assert PHQ9.max_score == 27


def test_a_scale_that_does_not_exist_is_named_in_the_error():
    with pytest.raises(KeyError, match="no questionnaire 'phq8'; known: phq9, gad7, pcl5, pain"):
        get_scale("phq8")
    with pytest.raises(KeyError, match="PHQ-9 has no item 10"):
        PHQ9.item(10)


# ---------------------------------------------------------------- totals and bands

def test_phq9_several_days_on_every_item_is_9_mild():
    assert score(PHQ9, every(PHQ9, 1)) == 9
    assert band(PHQ9, 9).key == "mild"
    assert band(PHQ9, 9).label("es") == "Leve"


def test_a_worked_phq9_example_scores_18_moderately_severe_with_item_9_raised():
    # The answers of a public FHIR example (SPiER IG, ExamplePHQ9Response), published with a total of 18.
    answers = {1: 3, 2: 3, 3: 2, 4: 2, 5: 2, 6: 2, 7: 1, 8: 1, 9: 2}
    assert score(PHQ9, answers) == 18
    assert band(PHQ9, 18).label("en") == "Moderately severe"
    assert safety_items_raised(PHQ9, answers) == [9]


def test_gad7_nearly_every_day_on_every_item_is_21_severe():
    assert score(GAD7, every(GAD7, 3)) == 21
    assert band(GAD7, 21).key == "severe"


def test_pcl5_moderately_on_every_item_is_40_probable_ptsd():
    assert score(PCL5, every(PCL5, 2)) == 40
    assert band(PCL5, 40).label("en") == "Probable PTSD"


@pytest.mark.parametrize("total, key", [
    (0, "minimal"), (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"),
    (15, "moderately_severe"), (19, "moderately_severe"), (20, "severe"), (27, "severe"),
])
def test_phq9_band_edges(total, key):
    assert band(PHQ9, total).key == key


@pytest.mark.parametrize("total, key", [
    (4, "minimal"), (5, "mild"), (9, "mild"), (10, "moderate"), (14, "moderate"), (15, "severe"),
])
def test_gad7_band_edges(total, key):
    assert band(GAD7, total).key == key


@pytest.mark.parametrize("total, key", [
    (30, "below_cutoff"), (31, "near_cutoff"), (32, "near_cutoff"), (33, "probable_ptsd"), (80, "probable_ptsd"),
])
def test_pcl5_band_edges(total, key):
    assert band(PCL5, total).key == key


@pytest.mark.parametrize("total, key", [(0, "none"), (1, "mild"), (3, "mild"), (4, "moderate"), (6, "moderate"),
                                        (7, "severe"), (10, "severe")])
def test_pain_bands(total, key):
    assert score(PAIN, {1: total}) == total
    assert band(PAIN, total).key == key


def test_a_score_outside_the_scale_has_no_band():
    with pytest.raises(ValueError, match="PHQ-9 scores run 0 to 27, not 28"):
        band(PHQ9, 28)


# ---------------------------------------------------------------- answers refused

def test_a_questionnaire_with_items_missing_is_not_scored_and_says_which():
    answers = every(PHQ9, 1)
    del answers[4], answers[9]
    with pytest.raises(IncompleteAnswers, match=r"PHQ-9: no answer yet to item\(s\) 4, 9") as caught:
        score(PHQ9, answers)
    assert caught.value.missing == [4, 9]


@pytest.mark.parametrize("answers, message", [
    ({**every(PHQ9, 0), 3: 4}, "PHQ-9 item 3: 4 is not one of"),
    ({**every(PHQ9, 0), 3: -1}, "PHQ-9 item 3: -1 is not one of"),
    ({**every(PHQ9, 0), 3: "2"}, "PHQ-9 item 3: '2' is not one of"),
    ({**every(PHQ9, 0), 3: True}, "PHQ-9 item 3: True is not one of"),
    ({**every(PHQ9, 0), 10: 1}, "PHQ-9 has no item 10"),
    ({**every(PHQ9, 0), 0: 1}, "PHQ-9 has no item 0"),
])
def test_an_answer_outside_the_options_or_the_items_is_refused(answers, message):
    with pytest.raises(InvalidAnswer, match=message):
        score(PHQ9, answers)


def test_pcl5_takes_4_but_phq9_does_not():
    assert score(PCL5, every(PCL5, 4)) == 80
    with pytest.raises(InvalidAnswer):
        safety_items_raised(PHQ9, {9: 4})


# ---------------------------------------------------------------- the safety item

@pytest.mark.parametrize("value, raised", [(0, []), (1, [9]), (2, [9]), (3, [9])])
def test_item_9_is_raised_by_any_answer_above_not_at_all(value, raised):
    assert safety_items_raised(PHQ9, {**every(PHQ9, 0), 9: value}) == raised
    assert safety_items_raised(PHQ9, {9: value}) == raised  # as soon as it is answered


def test_no_other_scale_raises_a_safety_item_even_at_its_top():
    for scale in (GAD7, PCL5, PAIN):
        assert safety_items_raised(scale, every(scale, scale.options[-1].value)) == []


# ---------------------------------------------------------------- the SMS screener

def test_a_negative_phq2_by_sms_skips_to_item_9_and_then_ends_screened_out():
    answers = {1: 1, 2: 1}
    assert screen_positive(PHQ9, answers) is False
    # Item 9 needs a clinician at any answer above 0: it is asked whatever the screener says.
    assert items_to_ask(PHQ9, answers, by_sms=True) == [9]
    answers[9] = 0
    assert items_to_ask(PHQ9, answers, by_sms=True) == []
    outcome = result(PHQ9, answers, by_sms=True)
    assert (outcome.score, outcome.band.key, outcome.screened_out) == (2, "minimal", True)


def test_a_negative_gad2_by_sms_ends_the_questionnaire_at_once():
    answers = {1: 1, 2: 0}
    assert items_to_ask(get_scale("gad7"), answers, by_sms=True) == []


def test_a_phq2_of_3_by_sms_goes_on_to_the_other_seven_items():
    answers = {1: 2, 2: 1}
    assert screen_positive(PHQ9, answers) is True
    assert items_to_ask(PHQ9, answers, by_sms=True) == [3, 4, 5, 6, 7, 8, 9]
    with pytest.raises(IncompleteAnswers):
        score(PHQ9, answers, by_sms=True)
    full = {**answers, **{n: 0 for n in range(3, 10)}}
    assert result(PHQ9, full, by_sms=True).screened_out is False


def test_on_the_web_all_nine_are_asked_whatever_the_phq2():
    assert items_to_ask(PHQ9, {}, by_sms=False) == list(range(1, 10))
    assert items_to_ask(PHQ9, {1: 0, 2: 0}, by_sms=False) == list(range(3, 10))
    with pytest.raises(IncompleteAnswers):
        score(PHQ9, {1: 0, 2: 0})


def test_by_sms_the_screener_is_asked_first_and_decides_only_when_both_answers_are_in():
    assert items_to_ask(PHQ9, {}, by_sms=True)[:2] == [1, 2]
    assert screen_positive(PHQ9, {1: 3}) is None
    assert items_to_ask(PHQ9, {1: 0}, by_sms=True) == [2, 3, 4, 5, 6, 7, 8, 9]


def test_gad2_screens_the_gad7_and_scales_without_a_screener_ask_everything():
    assert items_to_ask(GAD7, {1: 1, 2: 1}, by_sms=True) == []
    assert items_to_ask(GAD7, {1: 3, 2: 0}, by_sms=True) == [3, 4, 5, 6, 7]
    assert screen_positive(PCL5, every(PCL5, 0)) is None
    assert items_to_ask(PCL5, {1: 0, 2: 0}, by_sms=True) == list(range(3, 21))
    assert items_to_ask(PAIN, {}, by_sms=True) == [1]


# ---------------------------------------------------------------- response and remission

def test_response_at_exactly_half_and_not_short_of_it():
    assert response(PHQ9, baseline=20, score=10)          # 50 %
    assert not response(PHQ9, baseline=20, score=11)      # 45 %
    assert response(GAD7, baseline=14, score=7)           # 50 %
    assert not response(GAD7, baseline=13, score=7)       # 46 %
    assert response(PHQ9, baseline=9, score=4)            # 55 %: a half of an odd baseline rounds no way
    assert not response(PHQ9, baseline=9, score=5)
    assert not response(PHQ9, baseline=0, score=0)        # nothing to fall from


def test_response_refuses_a_score_outside_the_scale():
    with pytest.raises(ValueError, match="not 30"):
        response(PHQ9, baseline=30, score=10)


@pytest.mark.parametrize("scale, total, expected", [
    (PHQ9, 4, True), (PHQ9, 5, False), (GAD7, 4, True), (GAD7, 5, False),
    (PCL5, 32, True), (PCL5, 33, False), (PAIN, 0, None), (PAIN, 10, None),
])
def test_remission_edges(scale, total, expected):
    assert remission(scale, total) is expected


def test_change_from_baseline_in_points_and_percent():
    assert change_from_baseline(20, 10) == (-10, -50.0)
    assert change_from_baseline(10, 12) == (2, 20.0)
    assert change_from_baseline(0, 3) == (3, None)


# ---------------------------------------------------------------- which scales a patient gets

@pytest.mark.parametrize("condition, keys", [
    ("depression", ["phq9", "gad7"]), ("anxiety", ["gad7", "phq9"]), ("PTSD", ["pcl5", "phq9"]),
    ("pain", ["pain", "phq9"]), ("other", ["phq9"]), (None, ["phq9"]), ("OCD", ["phq9"]),
])
def test_scales_for_a_condition(condition, keys):
    assert scale_keys_for(condition) == keys


def test_a_clinic_can_give_its_own_mapping():
    assert scale_keys_for("pain", {"pain": ["pain"]}) == ["pain"]
    assert scale_keys_for("ptsd", {"pain": ["pain"], "other": ["gad7"]}) == ["gad7"]


# ---------------------------------------------------------------- a broken definition

@pytest.fixture
def definitions(tmp_path) -> Path:
    for path in DEFINITIONS.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_copy_of_the_bundled_files_loads_the_same(definitions):
    assert load_scales(definitions) == all_scales()


def test_a_new_file_is_a_new_scale_after_the_first_four(definitions):
    shutil.copy(definitions / "pain.toml", definitions / "a_pain.toml")
    edit(definitions / "a_pain.toml", 'key = "pain"', 'key = "a_pain"')
    assert list(load_scales(definitions)) == ["phq9", "gad7", "pcl5", "pain", "a_pain"]


@pytest.mark.parametrize("old, new, message", [
    ("low = 5\nhigh = 9", "low = 6\nhigh = 9", "phq9.toml: bands leave 5-5 uncovered"),
    ("low = 5\nhigh = 9", "low = 4\nhigh = 9", "phq9.toml: band 'mild' (4-9) overlaps the band below it"),
    ("low = 20\nhigh = 27", "low = 20\nhigh = 26", "phq9.toml: bands must end at max_score 27, they end at 26"),
    ("number = 3\n", "number = 4\n", "phq9.toml: items must be numbered 1 to 9 in order"),
    ("max_score = 27", "max_score = 30", "phq9.toml: max_score 30 is not 9 items x top option 3"),
    ('es = "Pensamientos de que estaría mejor muerto(a) o de lastimarse de alguna manera"\n', "",
     "phq9.toml: item 9 has no es text"),
    ("screen_positive_at = 3", "screen_positive_at = 7", "phq9.toml: screen_positive_at 7 is outside 1..6"),
    ('key = "phq9"', 'key = "phq-9"', "phq9.toml: key 'phq-9' does not match the file name"),
    ("max_score = 27", "", "phq9.toml: missing 'max_score'"),
    ("[[bands]]\nlow = 0", "[[bands]\nlow = 0", "phq9.toml: not valid TOML"),
])
def test_a_broken_definition_is_refused_naming_the_file(definitions, old, new, message):
    edit(definitions / "phq9.toml", old, new)
    with pytest.raises(DefinitionError, match=re.escape(message)):
        load_scales(definitions)


# ---------------------------------------------------------------- for any answers at all

@st.composite
def answered(draw):
    scale = draw(st.sampled_from(list(all_scales().values())))
    values = [o.value for o in scale.options]
    return scale, {n: draw(st.sampled_from(values)) for n in scale.numbers}


@given(answered(), st.booleans())
def test_any_complete_answers_score_within_the_scale_and_land_in_one_band(case, by_sms):
    scale, answers = case
    total = score(scale, answers, by_sms=by_sms)
    assert 0 <= total <= scale.max_score
    assert band(scale, total).low <= total <= band(scale, total).high
    assert sum(total in b for b in scale.bands) == 1
    assert items_to_ask(scale, answers, by_sms) == []
