"""Reply reading: keywords, appointment answers, mood scores, crisis language."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reminders.inbound.parsing import (
    HELP_WORDS,
    KINDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    Reading,
    read_reply,
)
from reminders.triage import Context, Tier, assess
from reminders.triage.engine import compile_phrase, fold


def detect_crisis(text: str) -> tuple[str, ...]:
    """The emergency and suicide-risk categories the triage reader finds (what a Reading carries)."""
    triage = assess(text, Context(use_model=False))
    return triage.reasons if triage.tier.rank >= Tier.SUICIDE_RISK.rank else ()

FAST = settings(max_examples=300, deadline=None)


# ---------------------------------------------------------------- keywords

STOP_TEXTS = [
    "STOP", "stop", "Stop", "Stop.", " stop! ", "STOP!!!", "'stop'", '"Stop"', "stop stop",
    "STOPALL", "stopall", "stop all", "STOP ALL", "UNSUBSCRIBE", "unsubscribe", "Unsubscribe.",
    "CANCEL", "cancel", "Cancel!", "END", "end", "End.", "QUIT", "quit", "Quit!",
    "REVOKE", "revoke", "OPTOUT", "optout", "opt out", "opt-out", "OPT-OUT", "Opt Out!",
    "stop please", "please stop", "Please STOP.", "STOP texting me", "stop messaging me",
    "unsubscribe me", "Stop, thank you", "stop sending me these", "stop now", "Stop 🛑",
    "🛑 STOP 🛑", "stoooop", "STOPPP", "ＳＴＯＰ", "quit texting me",
    "STOP sending me these stupid texts", "Stop messaging this number", "unsubscribe me from these reminders",
]
START_TEXTS = ["START", "start", "Start!", "UNSTOP", "unstop", "un-stop", "YES", "yes", "Yes.", " yes! ", "yesss"]
HELP_TEXTS = ["HELP", "help", "Help?", "help!", "INFO", "info", "Info."]
NOT_KEYWORD_TEXTS = [
    "please don't stop sending", "don't stop", "Can you stop by the clinic?",
    "I need to cancel my appointment", "cancel please", "stop start", "I quit smoking",
    "help me", "yes please", "the end", "I want to stop taking lamotrigine?",
    "what info do I need", "end it all",
]


@pytest.mark.parametrize("text", STOP_TEXTS)
def test_stop(text):
    assert read_reply(text).kind == "stop"
    assert read_reply(text, expecting_score=True).kind == "stop"


@pytest.mark.parametrize("text", START_TEXTS)
def test_start(text):
    assert read_reply(text).kind == "start"


@pytest.mark.parametrize("text", HELP_TEXTS)
def test_help(text):
    assert read_reply(text).kind == "help"


@pytest.mark.parametrize("text", NOT_KEYWORD_TEXTS)
def test_not_a_keyword(text):
    assert read_reply(text).kind not in {"stop", "start", "help"}


def test_every_exported_keyword_is_read():
    for word in OPT_OUT_WORDS:
        assert read_reply(word.lower()).kind == "stop", word
    for word in OPT_IN_WORDS:
        assert read_reply(word.title()).kind == "start", word
    for word in HELP_WORDS:
        assert read_reply(f" {word}? ").kind == "help", word


def test_stop_with_crisis_is_both():
    reading = read_reply("STOP i want to kill myself")
    assert reading.kind == "stop"
    assert reading.crisis_terms
    assert reading.note == "STOP i want to kill myself"


def test_end_it_all_is_crisis_not_stop():
    reading = read_reply("end it all")
    assert reading.kind == "free_text"
    assert reading.crisis_terms


@pytest.mark.parametrize("text", ["", "   ", "...", "?!", "\u200b", "😢", "🤔"])
def test_empty(text):
    assert read_reply(text) == Reading("empty")


@pytest.mark.parametrize("text, kind", [("🙂", "ack"), ("😊", "ack"), ("🙏🏽", "ack"), ("❤️", "ack"),
                                        ("👍", "soft_confirm"), ("👍👍", "soft_confirm"), ("👍🏻😊", "soft_confirm")])
def test_emoji_alone_thank_or_say_yes(text, kind):
    assert read_reply(text) == Reading(kind)


# ---------------------------------------------------------------- confirm / reschedule

CONFIRM_TEXTS = [
    "C", "c", "c.", "C!", " c ", "1", "confirm", "Confirm", "CONFIRMED", "confirmed!",
    "I confirm", "confirming", "yes I'll be there", "I’ll be there", "I will be there",
    "Confirmed, thanks", "ok confirm", "confirm my appointment", "C thanks", "yes c",
]
RESCHEDULE_TEXTS = [
    "R", "r", "r.", "3", "reschedule", "Reschedule please", "need to reschedule",
    "I need to reschedule", "can I reschedule", "Can I reschedule?", "resched",
    "I'd like to reschedule my appointment", "Something came up, I need to reschedule for next week",
    "I can't make it, can we reschedule?",
]


@pytest.mark.parametrize("text", CONFIRM_TEXTS)
def test_confirm(text):
    assert read_reply(text) == Reading("confirm")


@pytest.mark.parametrize("text", RESCHEDULE_TEXTS)
def test_reschedule(text):
    assert read_reply(text).kind == "reschedule"


@pytest.mark.parametrize("text", ["no need to reschedule", "I don't need to reschedule, see you then"])
def test_negated_reschedule_is_free_text(text):
    assert read_reply(text).kind == "free_text"


def test_short_reschedule_has_no_note_long_one_keeps_text():
    assert read_reply("R").note == ""
    long = "Something came up, I need to reschedule for next week"
    assert read_reply(long).note == long


@pytest.mark.parametrize("text, value", [("1", 1), ("3", 3), ("1.", 1), (" 3 ", 3)])
def test_bare_1_and_3_are_scores_when_expecting_one(text, value):
    assert read_reply(text, expecting_score=True) == Reading("score", value)


@pytest.mark.parametrize("text", ["C", "confirm", "R", "reschedule"])
def test_letters_stay_appointment_answers_when_expecting_score(text):
    assert read_reply(text, expecting_score=True).kind in {"confirm", "reschedule"}


# ---------------------------------------------------------------- mood scores

# (text, score, note); note None means "not checked"
SCORES = [
    ("7", 7, ""), (" 7 ", 7, ""), ("7/10", 7, ""), ("7 / 10", 7, ""), ("7 out of 10", 7, ""),
    ("seven", 7, ""), ("Seven.", 7, ""), ("SEVEN", 7, ""), ("I'd say a 6", 6, ""),
    ("I’d say a 6", 6, ""), ("about a 5", 5, ""), ("6, bit of a headache", 6, "bit of a headache"),
    ("mood 8 today, some nausea", 8, "some nausea"), ("feeling like a 3 today", 3, ""),
    ("10!", 10, ""), ("0", 0, ""), ("zero", 0, ""), ("ten", 10, ""), ("Ten.", 10, ""),
    ("a solid 8", 8, ""), ("8/10 feeling great", 8, "feeling great"), ("Mood is 9", 9, ""),
    ("my mood is a 4", 4, ""), ("score 2", 2, ""), ("I'm a 7, a bit tired", 7, "a bit tired"),
    ("7/10, took 2 tylenol for a headache", 7, "took 2 tylenol for a headache"),
    ("5 out of ten", 5, ""), ("seven out of ten", 7, ""), ("Four", 4, ""), ("2 today", 2, ""),
    ("4 and tired", 4, "tired"), ("６", 6, ""), ("8 😊", 8, ""), ("0/10", 0, ""),
    ("10/10", 10, ""), ("rate it a 5", 5, ""), ("2 - headache and nausea", 2, "headache and nausea"),
    ("8 thanks!", 8, ""), ("9.", 9, ""), ("6ish", 6, ""), ("6-ish", 6, ""),
    ("honestly a 4", 4, ""), ("I would say 6", 6, ""), ("6 (headache)", 6, "headache"),
    ("a low 3 today, dizzy after the infusion", 3, "dizzy after the infusion"),
    ("Mood: 7", 7, ""), ("I'm at a 4", 4, ""), ("I'd give it a 7", 7, ""),
    ("8. Slept well", 8, "Slept well"), ("mood 5. some dizziness after", 5, "some dizziness after"),
    ("0 I want to end it all", 0, "I want to end it all"), ("on a scale of 1 to 10 I'm a 6", 6, None),
]
DERIVED = [("6.5", 7), ("6.4", 6), ("4.5", 5), ("5-6", 5), ("5 - 6", 5), ("5 or 6", 5),
           ("5-6/10", 5), ("6.5/10", 7), ("I'd say a 5 or 6", 5), ("9.5", 10)]


@pytest.mark.parametrize("text, value, note", SCORES)
@pytest.mark.parametrize("expecting", [False, True])
def test_score(text, value, note, expecting):
    reading = read_reply(text, expecting_score=expecting)
    assert (reading.kind, reading.score) == ("score", value)
    if note is not None:
        assert reading.note == note


@pytest.mark.parametrize("text, value", DERIVED)
def test_decimals_round_half_up_and_ranges_take_the_lower_keeping_the_raw_text(text, value):
    reading = read_reply(text, expecting_score=True)
    assert (reading.kind, reading.score, reading.note) == ("score", value, text)


@pytest.mark.parametrize("text, value", [
    ("feeling ok, 6", 6), ("probably 5", 5), ("maybe 4", 4), ("pain is less, it's 7", 7),
    ("tired - 5", 5),
])
def test_looser_scores_only_when_expecting(text, value):
    assert read_reply(text, expecting_score=True).score == value
    assert read_reply(text).kind == "free_text"


NOT_SCORES = [
    "11", "100", "-1", "12", "11/10", "see you at 10:30", "10:30", "3pm", "3 pm", "10 a.m.",
    "on the 12th", "on the 3rd", "I have 2 questions", "2 questions", "see you on 3/10",
    "3/4", "2024-05-01", "1.5.2", "running 10 minutes late", "I'll be there by 9",
    "I took 2 advil", "Room 4", "call me at 5", "I have a 2 year old", "one more question",
    "no one called me back", "was a 3 yesterday and a 6 today", "3/10 yesterday but 6/10 today",
    "can we do 3/10 at 2pm?", "$5", "#4", "50%", "I slept 6 hours", "3 pm works",
    "5/10 but better than last week (was 3/10)",
]


@pytest.mark.parametrize("text", NOT_SCORES)
@pytest.mark.parametrize("expecting", [False, True])
def test_not_a_score(text, expecting):
    reading = read_reply(text, expecting_score=expecting)
    assert reading.kind != "score"
    assert reading.score is None


def test_free_text_keeps_the_text():
    assert read_reply("  Is parking free?  ") == Reading("free_text", note="Is parking free?")


# ---------------------------------------------------------------- crisis

CRISIS_TEXTS = [
    "I want to die", "i wanna die", "I wanna diiiie", "i just want to die", "want to just die",
    "I wish I was dead", "wish i were dead", "better off dead", "I'm thinking about suicide",
    "feeling suicidal", "SUICIDAL", "sucide", "suicid thoughts", "suiside", "suicde",
    "sewer slide", "sewerslide", "gonna unalive myself", "kms", "KMS lol",
    "I'm going to kill myself", "kil myself", "killing myself", "kill my self", "killmyself",
    "k1ll mys3lf", "su1c1de", "$uicide", "5uicide", "k!ll myself", "ki11 myself",
    "end it all", "I want to end my life", "ending my life", "take my own life",
    "I don't want to be here anymore", "dont want to be here", "do not want to live",
    "I don't wanna live", "I dont want to live anymore", "no reason to live",
    "nothing to live for", "I can't go on", "cant go on", "I cannot go on like this",
    "I might hurt myself", "hurting myself", "harm myself", "self harm", "self-harm",
    "selfharm", "cutting myself again", "I'm going to overdose", "overdosed last night",
    "i might od", "I OD'd", "thinking of ODing", "o.d.", "took all my pills",
    "took too many pills", "saving pills to end it", "hang myself", "jump off a bridge",
    "no way out", "goodbye forever", "I give up on life", "I am a burden",
    "im a burden to everyone", "everyone would be better off without me", "S U I C I D E",
    "ＫＩＬＬ ＭＹＳＥＬＦ", "suícide", "kill\u200bmyself", "w4nt to d1e", "wanna d!e",
    "7 but I want to die", "I wish I could die", "I'm tired of living", "I want to be dead",
    "I'm going to end things", "k.m.s", "i wanna kms", "I feel hopeless",
    "nobody would care if I was gone", "I want to disappear", "I took a bunch of pills",
    "I have a plan to end my life", "Stop texting me I want to die",
    # Found by reading replies through the webhook: each of these must reach a person at once.
    "I'm done with life", "nobody would miss me", "I'm going to jump", "I'd rather not be alive",
    "I'm a danger to myself", "I just want the pain to end", "I took 20 of my pills",
    "i dont see the point anymore", "i want it all to stop", "feel like giving up",
    "I am not safe right now", "goodbye everyone", "I wish I could sleep forever",
    "no one would even notice if I was gone", "can't breathe", "chest pain since the infusion",
]
NOT_CRISIS_TEXTS = [
    "see you tuesday", "on a diet", "I studied", "I studied the instructions", "good morning",
    "Thanks, the infusion went well", "Can I bring my wife?", "running 10 minutes late",
    "What time is my appointment?", "I feel great today", "The nausea is better",
    "Can you send the address again", "Is parking free?", "I have a headache",
    "Ok sounds good", "My ride is my sister", "I took my usual meds this morning",
    "Had a light breakfast at 6am", "Do I need to stop eating before?", "Dieting is hard",
    "That was odd but okay", "Body feels heavy but fine", "Period cramps today",
    "the code is 1234", "goodbye for now, see you next week", "C", "7", "STOP", "studies show",
    "Who is my doctor?", "food was good", "god bless",
    "I took my pills this morning", "I'm done with the forms", "the parking was a pain",
]


@pytest.mark.parametrize("text", CRISIS_TEXTS)
def test_crisis_is_flagged(text):
    terms = detect_crisis(text)
    assert terms
    assert read_reply(text).crisis_terms == terms
    assert read_reply(text, expecting_score=True).crisis_terms == terms


@pytest.mark.parametrize("text", NOT_CRISIS_TEXTS)
def test_ordinary_texts_are_not_crisis(text):
    assert detect_crisis(text) == ()
    assert read_reply(text).crisis_terms == ()


@pytest.mark.parametrize("text, label", [
    ("suicidal", "thoughts, means or plan of suicide"), ("I want to die", "wish to be dead"),
    ("self harm", "self-harm"), ("overdose", "overdose or poisoning"), ("no way out", "hopelessness or burdensomeness"),
])
def test_crisis_labels(text, label):
    assert label in detect_crisis(text)


def test_score_and_crisis_together():
    reading = read_reply("7 but I want to die")
    assert (reading.kind, reading.score, reading.note) == ("score", 7, "I want to die")
    assert reading.crisis_terms == ("wish to be dead",)


# ---------------------------------------------------------------- properties

PHRASES = [
    "kill myself", "suicide", "sucide", "sewer slide", "kms", "want to die", "wanna die",
    "wish I was dead", "better off dead", "don't want to be here", "end my life",
    "take my own life", "no reason to live", "can't go on", "hurt myself", "self-harm",
    "cutting myself", "overdose", "i might od", "took all my pills", "hang myself",
    "no way out", "goodbye forever", "i am a burden", "i'm a burden", "unalive",
]


@FAST
@given(st.text(), st.booleans())
def test_read_reply_never_raises_and_is_consistent(text, expecting):
    reading = read_reply(text, expecting_score=expecting)
    assert reading.kind in KINDS
    assert (reading.score is not None) == (reading.kind == "score")
    if reading.score is not None:
        assert 0 <= reading.score <= 10
    assert isinstance(reading.crisis_terms, tuple)


# A text that ends in a negation right before the phrase says a crisis is absent ("no suicide
# thoughts", "sin ideas suicidas"): the reader's statement-of-absence masks hide it on purpose.
_NEGATION_BEFORE = re.compile(r"(?i)\b(no|zero|without|had|having|have|sin|cero|ni|tenido|tengo)\W*$")


@FAST
@given(st.text().filter(lambda before: not _NEGATION_BEFORE.search(fold(before))), st.sampled_from(PHRASES), st.text())
def test_crisis_phrase_anywhere_is_flagged(before, phrase, after):
    assert detect_crisis(f"{before} {phrase} {after}")


@FAST
@given(st.text(), st.sampled_from(PHRASES), st.text(), st.sampled_from([str, str.upper, str.title]))
def test_crisis_phrase_in_any_case_and_punctuation_is_flagged(before, phrase, after, case):
    assert detect_crisis(f"{before}, {case(phrase)}!! {after}")


@FAST
@given(st.text(), st.booleans())
def test_appending_kill_myself_always_flags(text, expecting):
    assert read_reply(text + " kill myself", expecting_score=expecting).crisis_terms


@FAST
@given(st.integers(0, 10), st.booleans())
def test_every_in_range_number_out_of_10_is_a_score(n, expecting):
    assert read_reply(f"{n}/10", expecting_score=expecting) == Reading("score", n)


@pytest.mark.parametrize("text", ["i wish i was dead as hell", "wish I was dead AS", "i want to be dead ass serious"])
def test_an_idiom_mask_never_hides_a_wish_to_be_dead(text):
    """"dead ass" (seriously) once blanked "dead" out of a wish to be dead (found by hypothesis)."""
    assert detect_crisis(text)


@pytest.mark.parametrize("text", ["dead ass im starving lol", "im dead ass serious the traffic is bad"])
def test_dead_ass_for_seriously_is_not_a_crisis(text):
    assert not detect_crisis(text)


@pytest.mark.parametrize("text", ["mi presion esta en 190/120", "bp 199/111 with a pounding headache",
                                  "la presion en 211/122, me duele la cabeza"])
def test_a_reading_with_repeated_digits_is_read_whole(text):
    """Repeated digits once counted once, like letters: 199/111 read as 19/1, and a phrase for a year
    ("en 1990") took "en 190/120" for history."""
    assert assess(text, Context(use_model=False)).tier is Tier.EMERGENCY


@pytest.mark.parametrize("text", ["took my pills with a bottle of wine tonight", "washed my meds down with whiskey",
                                  "me tome las pastillas con una botella de tequila"])
def test_any_medicine_with_a_lot_of_alcohol_is_an_emergency(text):
    assert assess(text, Context(use_model=False)).category == "overdose or poisoning"


@pytest.mark.parametrize("text", ["had a glass of wine with dinner and took my usual meds",
                                  "took my meds with breakfast and then had wine at dinner with friends",
                                  "tuve presion alta en 1990, ahora bien"])
def test_an_ordinary_drink_or_an_old_reading_is_not_an_emergency(text):
    assert assess(text, Context(use_model=False)).tier is Tier.ROUTINE


@pytest.mark.parametrize("text", ["confirmo, ahí estaré", "Confirmed, I'll be there", "sí, confirmo. Ahí estaré"])
def test_two_confirmations_in_one_text_confirm(text):
    assert read_reply(text).kind == "confirm"


def test_a_confirmation_taken_back_is_not_one():
    assert read_reply("confirmo pero no voy a ir").kind != "confirm"


@pytest.mark.parametrize("text", ["pain is 2/10 at most today", "my back pain was 1/10 max after the infusion",
                                  "the fasting was hard but i tried"])
def test_a_low_pain_score_or_a_try_is_not_a_crisis(text):
    """A pain scale is not a mood scale (a ketamine clinic treats pain too); "i tried" ends many texts."""
    assert not detect_crisis(text)


def test_a_mood_score_at_most_is_read_as_the_score():
    assert read_reply("2/10 at most", expecting_score=True) == Reading("score", 2, "at most")
    assert read_reply("3/10 at 2pm", expecting_score=True).kind != "score"


@pytest.mark.parametrize("phrase, text, found", [
    ("taken care of $|now", "its all taken care of", True),
    ("taken care of $|now", "taken care of now", True),
    ("taken care of $|now", "taken care of the bill", False),
    ("done trying ...2 $", "im done trying with it", True),
    ("done trying ...2 $", "im done trying with it for today ok", False),
    ("cut !myself|shav*", "i cut shaving", False),
    ("cut !myself|shav*", "i cut deep", True),
])
def test_the_pattern_language_does_what_its_documentation_says(phrase, text, found):
    """Phrase writers met three traps: `$` as a choice was a literal dollar, `...N $` matched no
    words, a stem after `!` was literal (reminders/triage/engine.py documents the language)."""
    assert bool(re.search(compile_phrase(phrase), text)) is found


@pytest.mark.parametrize("text", [
    "regale mis cosas por la mudanza y ya quiero morirme, ya no voy a necesitar nada",
    "kill me now this wait is long, i want to die",
])
def test_an_idiom_mask_blanks_its_own_words_not_what_its_gaps_passed_over(text):
    """A mask with wide gaps ("regalé ... mudanza ... ya no voy a necesitar") once blanked the
    whole span, and the wish to die inside it with it."""
    assert detect_crisis(text)
