"""Opting out in the patient's own words, and changing their mind (reminders.inbound.consent_words).

US rule since April 2025: consent to texts may be revoked by any reasonable means, so "no more
texts please" or "bórrenme de la lista" opts out as STOP does. A text that only uses the same
words for something else ("stop by the pharmacy first?", "para mañana a qué hora?") does not.
"""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from reminders.inbound import consent_words
from reminders.inbound.consent_words import ConsentWordsError, load, revokes_consent, wants_back_in
from reminders.inbound.phrases import PhraseError, compile_phrase, fold, search_any

ROOT = Path(__file__).resolve().parent.parent

REVOKES = [
    # the brief's own examples
    "no more texts", "no more texts please", "stop texting me", "please stop messaging me",
    "don't text me anymore", "dont txt me again", "remove me from your list", "take me off this list",
    "unsubscribe me", "i dont want these messages", "leave me alone stop texting",
    "ya no me manden mensajes", "no me manden más mensajes", "no quiero recibir mensajes",
    "dejen de escribirme", "PARA", "para ya", "bórrenme de la lista",
    # more, as patients write them
    "Stop texting me!!!", "STOOOP TEXTING ME", "stop sending me these stupid texts", "quit texting me",
    "Please remove me from this list.", "Take me off", "opt me out", "how do I unsubscribe?",
    "I want to stop getting these texts", "I don’t want to receive texts anymore", "don’t text me",
    "no more reminders", "I'm sick of these texts", "enough with the texts", "leave me alone",
    "please stop all contact", "delete my number from your list", "stop please", "Stop.",
    "Para!!!", "PARA POR FAVOR", "para ya con los mensajes", "basta ya de mensajes", "paren los mensajes",
    "No, paren los mensajes", "dejen de mandarme mensajes", "cancelen los recordatorios", "quiero darme de baja",
    "denme de baja", "ya no quiero mensajes", "quiero dejar de recibir mensajes", "sáquenme de la lista",
    "borrenme de la lista", "no me manden mas mensajes", "no me vuelvan a escribir", "no quiero recibir",
    "déjenme en paz", "ya no me escriban por favor",
    # a crisis in the same text: still an opt-out (the caller handles the crisis separately)
    "stop texting me i want to kill myself", "no more texts, I want to die",
    "ya no me manden mensajes, me quiero morir", "I can't go on, stop texting me",
    "why won't you stop texting me", "deja de molestarme", "para de escribirme",
]
KEEPS = [
    # the brief's own examples
    "please don't stop the reminders", "stop by the pharmacy first?", "I need to stop eating at what time",
    "para mañana a qué hora?", "no more pain today!",
    "can you stop the reminder for friday's visit only? i rescheduled", "the texts are really helpful",
    "para la cita",
    # more
    "don't stop sending", "please keep texting me", "no dejen de mandarme mensajes", "no paren de escribirme",
    "I want to stop getting headaches", "i want out of this life", "don't text me before 8am",
    "para recibir mensajes que hago", "I get quite a lot of texts", "stop the reminders for tomorrow",
    "cancel my appointment", "I need to cancel", "end it all", "are there any more texts coming?",
    "i don't want the texts to stop", "no quiero perder los recordatorios", "no quiero que dejen de mandarme mensajes",
    "no me manden el recordatorio del viernes", "what time do I stop drinking", "¿puedo tomar agua?",
    "can i drive myself home after?", "quiero cancelar mi cita", "para el lunes", "gracias por los mensajes",
    "ok", "thanks", "C", "yes", "7", "I didn't mean to stop texting", "no quise darme de baja", "",
    "I stopped taking my meds", "should i stop my lexapro?", "I can't stop crying", "stop",
    # a request for staff rather than an opt-out: only some texts, someone else's, a question, a time of day
    "I'd like to stop the mood check-ins but keep the visit reminders", "did you stop sending reminders?",
    "you can stop texting my mom, she's not my ride anymore", "unsubscribe from email only",
    "por favor no me manden mensajes tan temprano", "I can't make it friday, please stop the reminders for that one",
]
REVOKES.append("stop")  # the carrier keyword itself is an opt-out here too
KEEPS.remove("stop")

BACK_IN = [
    # the brief's own examples
    "wait no... I still want the reminders", "i didn't mean to stop", "sorry i want the texts again",
    "quiero seguir recibiendo los mensajes", "me equivoqué, sí quiero los recordatorios",
    # more
    "oops", "sorry that was a mistake", "I hit stop by accident", "I didn't mean to stop texting",
    "keep sending me reminders", "I don't want to stop getting the texts", "start", "resubscribe me please",
    "put me back on the list", "never mind, keep the texts coming", "fue un error", "me equivoque",
    "sigan mandándome mensajes", "no quise darme de baja", "sí quiero los recordatorios",
    "quiero volver a recibir los mensajes",
]
NOT_BACK_IN = [
    "ok", "thanks", "thank you!", "gracias", "ok gracias", "", "stop", "no more texts", "para",
    "i don't want the texts", "I want the texts to stop", "no quiero seguir recibiendo mensajes", "ya no",
    "what time is my visit?", "👍",
]


@pytest.mark.parametrize("text", REVOKES)
def test_these_words_revoke_consent(text):
    assert revokes_consent(text) is True


@pytest.mark.parametrize("text", KEEPS)
def test_these_words_do_not_revoke_consent(text):
    assert revokes_consent(text) is False


@pytest.mark.parametrize("text", BACK_IN)
def test_after_an_opt_out_these_words_ask_to_come_back(text):
    assert wants_back_in(text) is True


@pytest.mark.parametrize("text", NOT_BACK_IN)
def test_after_an_opt_out_these_words_do_not_ask_to_come_back(text):
    assert wants_back_in(text) is False


def test_a_text_never_both_revokes_consent_and_asks_to_come_back():
    for text in REVOKES + KEEPS + BACK_IN + NOT_BACK_IN:
        assert not (revokes_consent(text) and wants_back_in(text)), text


@pytest.mark.parametrize("text", ["Stop texting me", "STOP TEXTING ME", "stop   texting\nme", "stop-texting-me",
                                  "ｓｔｏｐ ｔｅｘｔｉｎｇ ｍｅ", "stooop texxting me", "st\u200bop texting me"])
def test_case_width_spacing_punctuation_and_repeated_letters_do_not_matter(text):
    assert revokes_consent(text)


def test_spanish_is_read_with_or_without_accents():
    for text in ("no me manden más mensajes", "no me manden mas mensajes", "BÓRRENME DE LA LISTA",
                 "borrenme de la lista", "déjenme en paz", "dejenme en paz"):
        assert revokes_consent(text), text


def test_one_visit_is_not_consent_but_a_comma_ends_the_exception():
    assert not revokes_consent("stop the reminder for friday's visit")
    assert not revokes_consent("no paren los mensajes")  # "don't stop the messages"
    assert revokes_consent("No, paren los mensajes")  # "No, stop the messages"


@hsettings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_any_text_is_read_without_raising(text):
    assert isinstance(revokes_consent(text), bool)
    assert isinstance(wants_back_in(text), bool)


@hsettings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40), st.sampled_from(REVOKES[:18]),
       st.text(alphabet=" .!,", max_size=5))
def test_an_opt_out_still_reads_with_punctuation_around_it(prefix_noise, phrase, suffix):
    # A phrase with punctuation after it is still an opt-out (what comes before may change the meaning).
    assert revokes_consent(phrase + suffix)
    assert isinstance(revokes_consent(prefix_noise + " " + phrase), bool)


@pytest.mark.parametrize("value", [None, 42, b"stop texting me", ["no more texts"]])
def test_what_is_not_text_neither_revokes_nor_asks_back(value):
    assert revokes_consent(value) is False
    assert wants_back_in(value) is False


def test_a_very_long_text_is_read_quickly():
    import time

    text = "stop by the pharmacy " * 400 + "no more texts"
    started = time.perf_counter()
    revokes_consent(text)
    wants_back_in(text)
    assert time.perf_counter() - started < 1.0


# ---------------------------------------------------------------- the phrases file

def test_the_phrases_file_documents_its_pattern_syntax_and_has_english_and_spanish_tables():
    source = consent_words.PHRASES_FILE.read_text(encoding="utf-8")
    assert "PATTERN SYNTAX" in source.split("[groups]")[0]
    raw = tomllib.loads(source)
    for language in ("en", "es"):
        assert raw[language]["revoke"] and raw[language]["back_in"]


def test_the_phrases_file_ships_with_the_package():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "inbound/*.toml" in pyproject["tool"]["setuptools"]["package-data"]["reminders"]


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "consent_words.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """
[groups]
texts = "text*|mensaje*"
[en]
revoke = ["stop @texts"]
keep = []
back_in = ["start"]
back_in_not = []
[es]
revoke = ["para ya"]
keep = []
back_in = ["sigan"]
back_in_not = []
"""


def test_a_good_file_loads(tmp_path):
    phrases = load(write(tmp_path, GOOD))
    assert len(phrases.revoke) == 2 and len(phrases.back_in) == 2


@pytest.mark.parametrize("change, message", [
    (('"stop @texts"', '"stop @txts"'), "[en] revoke: 'stop @txts': no group named 'txts'"),
    (('"para ya"', '"para [ya"'), "[es] revoke: 'para [ya': '[ya': an optional word is written [a|b]"),
    (('"para ya"', '"... ya"'), "... must stand between two words"),
    (('"para ya"', '"para $ ya"'), "may only start (^) or end ($, !) a phrase"),
    (('"para ya"', '"para y-a"'), "'y-a' is not a word"),
    (('"para ya"', '"para ...12 ya"'), "a gap is 1 to 9 words"),
    (('"para ya"', '"[ya]"'), "at least one word that is not optional"),
    (('"para ya"', '""'), "an empty phrase"),
    (('"para ya"', '3'), "[es] revoke must be a list of phrases"),
    (("[es]", "[fr]"), "unknown table(s) fr"),
    (("back_in_not = []\n[es]", "[es]"), "[en] back_in_not must be a list of phrases"),
    (("keep = []\nback_in = [\"sigan\"]", "keeps = []\nback_in = [\"sigan\"]"), "[es] has unknown list(s) keeps"),
    (('revoke = ["stop @texts"]', 'revoke = ["stop @texts"'), "not valid TOML"),
])
def test_a_mistake_in_the_file_fails_the_load_with_the_phrase_and_the_reason(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(ConsentWordsError) as caught:
        load(write(tmp_path, GOOD.replace(old, new, 1)))
    assert message in str(caught.value)
    assert str(caught.value).startswith("consent_words.toml: ")


def test_a_missing_language_table_fails_the_load(tmp_path):
    with pytest.raises(ConsentWordsError, match=r"missing table \[es\]"):
        load(write(tmp_path, GOOD.split("[es]")[0]))


# ---------------------------------------------------------------- the pattern syntax itself

@pytest.mark.parametrize("phrase, text, found", [
    ("stop ...2 @t", "please stop all the texts now", True),
    ("stop ...2 @t", "stop by the pharmacy, texts later", False),
    ("^ para [ya] $", "PARA!!", True),
    ("^ para [ya] $", "para ya", True),
    ("^ para [ya] $", "para la cita", False),
    ("dont|do_not stop !eating", "don't stop eating", False),
    ("dont|do_not stop !eating", "do not stop the texts", True),
    ("text*", "TEXTING", True),
    ("text*", "context", False),
    ("bórrenme de", "borrenme de la lista", True),
    ("messages", "mesages", True),
    ("take_me off", "take me off", True),
])
def test_the_pattern_syntax(phrase, text, found):
    assert search_any([compile_phrase(phrase, {"t": "text*|reminder*"})], fold(text)) is found


def test_folding_keeps_letters_and_digits_and_nothing_else():
    assert fold("Don’t TEXT me!!! Stooop, mañana ¿qué? ５pm") == "dont text me stop manana que 5pm"


def test_a_group_that_contains_itself_is_refused():
    with pytest.raises(PhraseError, match="contains itself"):
        compile_phrase("@a", {"a": "x|@a"})
