"""Read a patient's text reply: keyword, appointment answer, mood score, free text, crisis.

Pure: standard library only, no I/O. The caller decides what to do with a `Reading`.

Keywords come from one table per language (`KEYWORDS`: English and Spanish); every table is
used for every text, so "PARAR" opts out and "siete" is a score whatever the patient's language.

Kinds, checked in this order (the first that fits wins):

``empty``       nothing alphanumeric (blank, punctuation), or emoji that are neither a
                thumbs-up nor a smile or thanks ("😢": staff read it).
``soft_confirm`` (emoji) a thumbs-up or OK hand alone, or with smiles.
``ack``         (emoji) smiles, hearts, folded hands alone.
``stop``        opt-out.  Keywords OPT_OUT_WORDS.  The rule, on the message folded to
                lower case without accents, apostrophes, punctuation and emoji, split into
                words, with "opt out" joined to OPTOUT, "stop all" to STOPALL, "un stop"
                to UNSTOP, and letters repeated in a row counted once ("stooop" = "stop"):
                (a) every word is an opt-out keyword ("Stop.", "'stop'", "STOP!!!",
                    "opt-out", "stop all", "stop stop"); or
                (b) every word is STOP, STOPALL, UNSUBSCRIBE, OPTOUT, QUIT or one of the
                    POLITE_WORDS, with at least one keyword ("stop please", "please stop",
                    "STOP texting me", "unsubscribe me", "quit sending these", "parar por
                    favor").  The words in a table's "opt_out_alone" (CANCEL, END, REVOKE, ALTO,
                    CANCELAR, BAJA) must stand alone: "cancel please" usually means the
                    appointment, "the end" is not a request; or
                (c) the first word is STOP, STOPALL, UNSUBSCRIBE or OPTOUT and the message
                    holds crisis language ("STOP i want to kill myself") or speaks of the
                    messages themselves ("STOP sending me these stupid texts"): US rules
                    count such a sentence as revoking consent.
                Anything else is not an opt-out ("please don't stop sending", "I need to
                cancel my appointment", "end it all").
``start``       opt back in: every word is START, UNSTOP or YES (same folding, no extra
                words).  So a bare "yes" is ``start`` (carrier rule), never ``confirm``.
``help``        every word is HELP or INFO.
``confirm``     "C", "confirm(ed|ing)", "I confirm", "I'll be there"; "sí", "confirmo", "ahí
                estaré"; with optional "ok/yes/thanks/please..." around, or a bare 1 when not
                expecting a score.
``reschedule``  "R", "reschedule", "need to reschedule", "can I reschedule?", a bare 3
                when not expecting a score, or (after the score check) any text with a
                word starting "resched" and no "no/not/don't/never" in the 3 words before.
``soft_confirm`` "see you then", "sounds good", "nos vemos": a confirmation only right after a
                reminder (the caller decides), else thanks.
``ack``         only thanks or ok: "ok", "thanks", "thank you so much", "gracias", "vale".
``score``       a mood score 0 (worst) to 10 (best); see `_find_score`.  ``note`` is the
                rest of the text ("6, bit of a headache" -> "bit of a headache"), or the
                whole text when the score was rounded ("6.5" -> 7) or a range ("5-6" -> 5).
``unclear_score`` (expecting a score) a short text that tries to give one and cannot be read:
                "sevn", "idk 5ish?".  Re-asked once.
``free_text``   everything else; ``note`` holds the stripped text.

Reschedule also covers a request to cancel or move the visit anywhere in a text ("I need to
cancel", "can't make it tomorrow", "no puedo ir"), unless negated ("I don't need to cancel").

``crisis_terms`` is filled on every kind, from `detect_crisis` (English and Spanish);
`crisis_kind` tells a medical emergency (911 first) from a suicidal crisis (988 first), and
`looks_spanish` whether to answer in Spanish.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

__all__ = [
    "CANCEL_WORDS",
    "CRISIS_LABELS",
    "HELP_WORDS",
    "KEYWORDS",
    "KINDS",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "POLITE_WORDS",
    "Reading",
    "crisis_kind",
    "detect_crisis",
    "looks_spanish",
    "read_reply",
]

KINDS = ("stop", "start", "help", "confirm", "soft_confirm", "reschedule", "ack", "score", "unclear_score",
         "free_text", "empty")

# One table per language: adding a language is adding its table here (and its templates).
# Words are matched folded (lower case, no accents, no punctuation): "SÍ" is "si".
KEYWORDS: dict[str, dict[str, frozenset[str] | tuple[str, ...]]] = {
    "en": {
        # opt-out keywords; those in "opt_out_alone" count only when they stand alone
        "opt_out": frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}),
        "opt_out_alone": frozenset({"CANCEL", "END", "REVOKE"}),
        "opt_in": frozenset({"START", "UNSTOP", "YES"}),
        "help": frozenset({"HELP", "INFO"}),
        # a whole text that only acknowledges: recorded, no answer, no inbox item
        "ack_heads": frozenset("ok okay okey k kk thanks thank thankyou thx ty tysm noted got".split()),
        "ack_words": frozenset("ok okay okey k kk thanks thank you thankyou thx ty tysm so much very noted got it "
                               "will do".split()),
        # phrases that confirm the visit (regex, on the folded words joined by spaces)
        "confirm": (r"c", r"confirm(?:ed|ing)?", r"i confirm", r"(?:i )?(?:ill|will|shall) be there",
                    r"(?:we|well) (?:will )?be there", r"i will come", r"ill come"),
        # phrases that confirm only right after a reminder ("see you then"); otherwise thanks
        "soft_confirm": (r"see (?:you|u|ya)(?: (?:then|there|soon|tomorrow|tmrw|tmr|on \w+|next \w+|at \w+))?",
                         r"sounds good", r"will do", r"looking forward(?: to it)?"),
        "reschedule": (r"r", r"resched|reschedule", r"(?:i )?(?:need|want|would like|id like|have) to reschedule",
                       r"(?:can|could|may) i reschedule", r"please reschedule"),
        # anywhere in a text: a request to cancel or move the visit (staff call the patient)
        "visit_change": (r"\bresched", r"\b(?:need|have|want|got|gotta|going|gonna|would like|wanna) to cancel\b",
                         r"\bcancel (?:my|the|our|this|tomorrow|todays|today|next|that|it)\b",
                         r"\b(?:cant|can not|cannot|wont|will not|not going to|not gonna|unable to|wont be able to|"
                         r"will not be able to|not be able to|dont think i can|do not think i can) "
                         r"(?:make it|come|come in|be there|attend|go to|go in|get there)\b",
                         r"\b(?:move|change|push) (?:my|the|our) (?:appointment|appt|visit|infusion|session|time)\b",
                         r"\b(?:a )?(?:different|another|new|later|earlier) (?:day|time|date)\b"),
        "polite": frozenset(
            "please pls plz thanks thank you thankyou thx ty ok okay now immediately asap me "
            "text texts texting txt txts message messages messaging msg msgs sms send sending "
            "contact contacting reminder reminders from this these the list number".split()),
        "pre": frozenset("ok okay k yes yeah yep yup sure great perfect hi hello hey thanks thank you thx ty please pls"
                         .split()),
        "post": frozenset("thanks thank you thx ty please pls ok great bye".split()),
        "numbers": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    },
    "es": {
        "opt_out": frozenset({"PARAR", "ALTO", "CANCELAR", "BAJA", "DETENER"}),
        "opt_out_alone": frozenset({"ALTO", "CANCELAR", "BAJA"}),
        "opt_in": frozenset(),  # carriers only know START, UNSTOP and YES
        "help": frozenset({"AYUDA"}),
        "ack_heads": frozenset("gracias vale entendido ok okey listo".split()),
        "ack_words": frozenset("gracias muchas mil vale entendido ok okey listo muy amable".split()),
        "confirm": (r"si", r"confirmo", r"confirmad[oa]", r"(?:si )?(?:ahi|alli|aqui) (?:estare|estaremos|voy a estar)",
                    r"si voy", r"(?:si )?(?:voy|vamos) a ir", r"si (?:confirmo|claro)", r"claro que si"),
        "soft_confirm": (r"nos vemos(?: (?:manana|pronto|entonces|ahi|alli|el \w+))?",
                         r"hasta (?:manana|pronto|luego)"),
        "reschedule": (r"cambiar", r"(?:necesito|quiero|quisiera|puedo) cambiar(?: (?:la|mi) (?:cita|hora|fecha))?",
                       r"cambiar (?:la|mi) (?:cita|hora|fecha)", r"reprogramar(?: (?:la|mi) cita)?"),
        "visit_change": (r"\bcambiar (?:la|mi|de) (?:cita|hora|fecha|dia)\b", r"\breprogram",
                         r"\b(?:necesito|tengo que|quiero|quisiera|voy a) cancelar\b",
                         r"\bcancelar (?:la|mi|mis) cita",
                         r"\bno (?:puedo|podre|voy a poder|alcanzo a) (?:ir|llegar|asistir|venir)\b",
                         r"\b(?:otro|otra) (?:dia|hora|fecha)\b"),
        "polite": frozenset("por favor porfavor gracias ya me mensajes mensaje textos texto envien enviar manden "
                            "ahora".split()),
        "pre": frozenset("si ok vale claro gracias hola buenos buenas dias tardes".split()),
        "post": frozenset("gracias muchas saludos ok".split()),
        "numbers": ("cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez"),
    },
}
LANGUAGES = tuple(KEYWORDS)


def _all(part: str) -> frozenset[str]:
    return frozenset().union(*(KEYWORDS[lang][part] for lang in LANGUAGES))


def _any_of(part: str) -> str:
    return "|".join(f"(?:{p})" for lang in LANGUAGES for p in KEYWORDS[lang][part])


OPT_OUT_WORDS = _all("opt_out")
OPT_OUT_ALONE_WORDS = _all("opt_out_alone")
OPT_IN_WORDS = _all("opt_in")
HELP_WORDS = _all("help")
POLITE_WORDS = _all("polite")
# A bare keyword that opts out but may have meant the visit: staff are told.
CANCEL_WORDS = frozenset({"CANCEL", "CANCELAR"})

@dataclass(frozen=True)
class Reading:
    kind: str
    score: int | None = None
    note: str = ""
    crisis_terms: tuple[str, ...] = ()
    # For ``stop``: the keyword itself ("cancel"), so a CANCEL can be shown to staff.
    keyword: str = ""


# ---------------------------------------------------------------- normalizing

_APOSTROPHES = str.maketrans({c: "'" for c in "’‘`´ʼ′"})


def _fold(text: str) -> str:
    """NFKC, lower case, no accents, no invisible format characters, one apostrophe."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    kept = (c for c in text if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return "".join(kept).translate(_APOSTROPHES)


def _squash(word: str) -> str:
    """Letters repeated in a row count once: "stooop" -> "stop"."""
    return re.sub(r"(.)\1+", r"\1", word)


def _plain_words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", _fold(text).replace("'", ""))


# ---------------------------------------------------------------- crisis
#
# The crisis reader.  It is tuned on tests/data/crisis_eval/ (English and Spanish patient
# texts; `python scripts/crisis_eval.py` prints recall per category and the false alarms) and
# errs on the side of flagging: a missed crisis text is the worst failure of the product, a
# false alarm costs a member of staff a look.  It reads structure as well as fixed phrases:
# a means of harm near words of intent, death words after words of wishing, a number of
# pills after "took", a blood pressure from its numbers, goodbyes that are not "see you".

def _phrase(phrase: str) -> str:
    """Regex for a phrase, to search in squashed text (see `_crisis_readings`).

    Words may run together ("killmyself"); "word*" is a stem (up to 5 more letters inside
    a phrase, any number at its end); "a|b*|c_d" is any one of these ("_" joins words: "c_d"
    is "c d"); "..." stands for up to three other words, "...N" for up to N; "$" is the end
    of the text; a last token "!a|b_c" means "not followed by the words a, or b c"."""
    tokens = phrase.split()
    ahead = ""
    if tokens[-1].startswith("!"):
        alts = [" ".join(_squash(_fold(w)) for w in alt.split("_")) for alt in tokens.pop()[1:].split("|")]
        ahead = r"(?! (?:" + "|".join(map(re.escape, alts)) + r")\b)"
    parts = []
    for i, token in enumerate(tokens):
        last = i == len(tokens) - 1
        ends_word = last or tokens[i + 1].startswith("...")  # "tree ..." must not match "treatment"
        if token.startswith("..."):
            parts.append(r"(?:\w++ ){0,%d}" % int(token[3:] or 3))
            continue
        if token == "$":
            parts.append(token)
            continue
        alts = []
        for alt in token.split("|"):
            words = alt.split("_")
            body = []
            for j, word in enumerate(words):
                w = re.escape(_squash(_fold(word.rstrip("*"))))
                if word.endswith("*"):
                    w += r"\w*+" if last and j == len(words) - 1 else r"\w{0,5}"
                body.append(w)
            alts.append(" ?".join(body) + ("" if alt.endswith("*") or not ends_word else r"\b"))
        parts.append("(?:" + "|".join(alts) + ")")
    return r"\b" + " ?".join(parts) + ahead


_I = "i|me|my|myself|im|am"  # after the contractions are expanded
_FAMILY = ("family|kids|children|child|son|sons|daughter|daughters|mom|mum|mother|dad|father|"
           "parents|wife|husband|partner|boyfriend|girlfriend|sister|sisters|brother|brothers|"
           "friends|friend|grandkids|fiance|fiancee|everyone|everybody|baby|babies")
_MEANS = ("rope|ropes|gun|guns|pistol|pistols|rifle|rifles|shotgun|firearm*|handgun*|"
          "revolver|bullet|bullets|ammo|razor*|blade|blades|box_cutter|knife|knives|poison|bleach|"
          "antifreeze|cyanide|carbon_monoxide|exhaust|ledge|cliff|cliffs|rooftop|railing")
_PLACES = ("bridge|overpass|roof|building|balcony|window|parking_garage|garage|train|trains|"
           "tracks|subway|traffic|highway|freeway|truck|bus|car|cars|tree|wall|lake|river|ocean|"
           "sea|water|tub|bath|pills|pill|tablets|meds|medication*|bottle|stash|drawer|closet")
_INTENT = ("jump*|leap*|throw*_my_self|step*_in_front|walk*_in_front|lie_down_in_front|lay_down_in_front|"
           "drive*_off|drive*_into|driving_off|driving_into|swerv*|crash*_into|crash*_my|wreck*_my|"
           "stand*_on|standing_at|staring_down|stare_down|looking_down|look*_over_the_edge|"
           "look*_at|staring_at|stare_at|counting|stockpil*|hoard*|sav*_up|saving|saved|"
           "enough|lethal|how_many|how_much|end_it|end_my|die|dying|kil*_my_self|do_it|thinking_about")
_DEATH = ("die|died|dead|death|dying|be_gone|not_alive|not_be_alive|not_exist*|stop_exist*|"
          "not_wake_up|never_wake_up|not_make_it|disappear*|vanish*")
_WISH = ("want*|wish*|hope|hoping|hopefully|pray*|rather|ready_to|deserve*|should|should_have|"
         "would_not_mind|do_not_mind|do_not_care_if|not_care_if|i_do_not_care|long*_to|welcome|need_to|"
         "be_ok_if|be_fine_if|be_okay_if")

_CRISIS_PHRASES: dict[str, tuple[str, ...]] = {
    "suicide": (
        # the word and its spellings
        "suicid*", "sucid*", "suisid*", "suicd*", "suiced*", "suecid*", "siucid*",
        "suside*", "sewer slide*", "un alive*", "k m s", "k y s", "self delet*",
        "kil* my self", "ofing my self", "end* it all", "end* my life", "end* my own life",
        "to end it", "end* everything", "end* things", "end* it", "tak* my own life", "tak* my life",
        "took my own life", "hang* my self", "shoot* my self", "drown* my self", "poison* my self",
        "jump* off|from|of_of", "jump* in front of", "gun to my head", "blow my brains",
        "going to jump", "jump* to my death", "want* ... end* it", "going to end* it",
        "danger to my self", "scared|afraid|frightened of my self|what_i_might_do|what_i_will_do",
        "am not safe", "not feel* safe", "do not feel safe",
        "keep my self safe", "do something stupid|drastic|dumb", "do something to my self", "self destruct*",
        # thoughts
        "my|the|passive|active|having|some|bad|more|with si",
        "si thoughts|urges|ideation|again|is|has|was|came|today|bad|worse",
        "thoughts|thought|thinking|think|thinkin ...4 of|about ...2 dying|death|ending|suicide|killing|"
        "not_be|not_being|taking_my|unaliv*|offing|jumping|hanging",
        "urge* to kil*|die|end", "dark thoughts", "intrusive thoughts", "imagin* my own funeral", "my funeral",
        "head|brain|voice|voices ...4 do it", "tel* me to kil*|die|end|do_it",
        # means and method: a means near first-person words or intent
        f"{_MEANS} ...5 {_I}|tonight|today|ready|bought|got|have|planning|going_to|hand|next_to|out|loaded|"
        "is_here|with_me",
        f"{_I}|bought|buy|got|have|ready|loaded|load* ...5 {_MEANS}",
        f"{_INTENT} ...4 {_PLACES}", f"{_PLACES} ...3 {_INTENT} !on_a_call|on_the_call|in_the_shower|start",
        "i_am|i_will_be|standing|sitting|parked|stood on|at the bridge|overpass|roof|ledge|edge|cliff|"
        "tracks !1|2|3|4|5|6|7|8|9|10|15|20|min|mins|minutes|away|in_traffic|stuck|now_in|almost|be_there|"
        "running|traffic|late",
        "train|railroad|railway tracks", "in front of a|the train|truck|bus|car|cars|subway",
        "oncoming traffic|train", "car off",
        "drive*|driving off|into ...3 bridge|cliff|wall|tree|lake|river|ocean|traffic|road",
        "engine running", "garage with the door|doors", "car in the garage",
        "truck|bus|car|train hit* me", "walk* into the lake|ocean|sea|river|water|woods|traffic",
        "blade next to me", "filled the tub", "hoard* my", "stockpil* my", "stash* my",
        "garage ...5 car_running|engine_running|running|engine|exhaust", "car|engine running ...3 garage",
        "pictur*|imagin*|visualiz* my self ...2 jumping|dying|dead|hanging|gone|in_a_coffin|falling",
        "gave|giving|give ...8 keep it|keep_them|have_it|have_them|keep_my",
        "pills|meds|tablets|medication* ...2 stash*|saved|hidden|hoarded|stockpiled|collected",
        "bridge|water|ocean|river|train|gun|pills|death|void|edge ...3 calling|calls me",
        "let go of the wheel|steering_wheel",
        "enough to die|kil*|end_it|od|overdose|not_wake_up", "said|saying|say bye|goodbye|good_bye to my",
        "sold|selling|sell ...2 my stuff|things|belongings|everything", "paid off everything|all_my_debts",
        "do something bad|stupid|dumb|drastic tonight|to_my_self", "something bad tonight",
        "pills|meds|tablets ...4 pile|piled|lined_up|laid_out|counted_out|in_a_row", "pile of pills|meds",
        f"{_PLACES}|{_MEANS} ...10 staring_at|stare_at|looking_at_them|looking_at_it",
        "tallest|highest building|bridge|point|cliff|roof|floor",
        "looked_up|looking_up|googled|googling|searched|searching|researching|research ...4 building|bridge|"
        "cliff|overdose|dose|gun*|rope|noose|poison|lethal|suicide",
        "bridge|overpass|cliff|ledge ...6 slowing|slow_down|pull_over|stopping|edge|railing|looking_down|stare",
        "heaven|the_other_side|afterlife ...5 want*|join*|be_with|better|go_to|see|wish*",
        "want*|join*|be_with|better|go_to|wish* ...5 heaven|the_other_side|afterlife",
        "join my ...1 " + _FAMILY + "",
        "hope|wish|pray ...5 accident|get_hit|crash|hit_me|kills_me|take_me",
        "so i could|can die|be_dead|be_gone|finally_rest",
        "care if i live|die|wake_up|make_it|am_alive|exist", "overdid|over_did it ...3 pills|meds|xanax|klonopin",
        "psych ward|hospital|unit|er", "inpatient", "5150", "baker act*",
        "admitted to the|a psych|ward|hospital|inpatient",
        "admitted me", "called 911 on me", "call 911 on me",
        "collect*|sav*|hoard*|stash*|hid*|hiding|gather*|stockpil* ...3 pills|meds|medication*|tablets|"
        "sleeping_pills|painkillers|xanax|klonopin|ambien",
        "bunch|handful|lots|boxes|bottles|packs|stash|pile ...1 of ...2 pills|tylenol|advil|aspirin|paracetamol|"
        "acetaminophen|ibuprofen|sleeping|meds|tablets",
        f"{_PLACES}|{_MEANS} ...5 in_front_of_me|next_to_me|in_my_hand*|on_my_lap|beside_me",
        "all_my|all_of_my ...3 in_front_of_me|lined_up|laid_out|counted_out|next_to_me",
        "lined_up|laid_out|counted_out|counting_out|laying_out|lining_up ...3 all_my|all_of_my|pills|meds|tablets",
        "vodka|wine|whiskey|whisky|alcohol|liquor|beer|tequila|rum|booze|gin ...6 all_my|all_of_my|every_pill|"
        "all_the_pills",
        "all_my|all_of_my|all_the_pills ...6 vodka|wine|whiskey|whisky|alcohol|liquor|beer|tequila|rum|booze|gin",
        f"{_PLACES}|{_MEANS} ...6 thinking_about_it|thinking_about_doing|tempted|tempting",
        "planning|plan|going|want*|wanted|about|ready|need|have|tempted|urge ...1 to jump|leap",
        # research
        "how many|much ...6 die|kil*|od|overdose|lethal|fatal|end_it|not_wake_up",
        "how many ...3 pills|tablets|of_my|of_these|of_them ...4 take|takes",
        "how high|tall|far_down ...4 bridge|building|garage|parking_garage|roof|cliff|overpass|balcony|floor|ledge",
        "lethal|fatal dose*|amount", "lethal", "fatal", "overdose on", "how many|much ...6 survive|fatal",
        "fastest|quickest|easiest|painless*|best|surest way* to go|die|end|kil*",
        "painless way", "ways to die|kil*", "how to kil*|hang|end_my|end_it|tie_a_noose|die|od|overdose|bleed_out",
        "would kil* someone|a_person|me", "bleed out", "looking up how", "googling how", "researching how",
        # intent and plan, finality
        "tonight|today is the night|day", "tonights the night", "this is it", "i have decided", "decided to end",
        "made up my mind", "go* through with it", "set a date", "have|got|made a plan !for|to_get|to_come|with",
        "i have a plan !for|to_get|to_come|with", "plan and a date", "know how and|& when", "know exactly how",
        "have everything ready|set|planned|prepared !for_tomorrow|for_my|for_the",
        "everything is ready|set|planned|prepared for tonight|tomorrow_night", "got it all planned|figured_out",
        "all planned out", "planned it out", "planned it all",
        "going_to|finally|about_to|ready_to|will|planning_to|gonna do it", "doing it !again_next|tomorrow_instead",
        "it is_going_to|will happen tonight|soon|this_week|tomorrow", "it will all be over", "all be over soon",
        "be over soon", "it will be over", "want* ...2 to be over", "want* it over|over_with",
        "want* it|this|everything|all|life ...2 to end|to_stop|over",
        "will_not|not_going_to be alive", "not be alive any_more|much_longer|for_long|next|by|tomorrow|for_my",
        "will be dead", "waiting for ...3 to leave|fall_asleep|go_to_sleep|be_asleep",
        "when ...3 asleep|leaves|leave|gone ...4 do it", "after ...4 do it", "do it ...3 when|after",
        "last time ...3 hear from me", "one last time",
        "last message|text|goodbye !from_me_today|for_today|today|of_the_day|for_now",
        "final message|text|goodbye",
        "last time ...4 text*|writ*|talk*|messag*|hear|see|contact*", "try to stop me", "can not stop me",
        "do not stop me",
        "no one can stop me", "forgive me|sorry for what i am|i_was about_to|going_to do",
        "what i am about_to|going_to do",
        # preparation
        "suicide|goodbye|good_bye|farewell|final|last note|notes|letter|letters",
        "letter|letters|note|notes|envelope|passwords|instructions ...4 for|to my ...2 " + _FAMILY,
        "wrote|writing|written|write|left|finished ...4 letters|notes",
        "wrote|writing|write|left ...2 to my ...2 " + _FAMILY,
        "gave|giving|give|given ...3 away",
        "gave|giving|given my ...3 to my|a|her|his|the neighbor|friend|sister|brother|mom",
        "wrote|writing|written|made|make|making|finished|finish|updated|update*|did|doing|done|redid my|a|the will",
        "left|leaving my ...1 " + _FAMILY + " a|my|some|letter*|note*|video*|message*",
        "left|leaving|recorded|made ...2 video*|message*|letter*|note* ...3 for|to my",
        "life insurance", "affairs ...2 in order", "loose ends", "said|saying|say my goodbyes",
        "goodbye|good_bye|bye forever",
        "goodbye|good_bye !for_now|see|til|till|until|next|tomorrow|later|soon|for_today|have|thanks|thank|"
        "to_you_too|and_thanks|and_thank",
        "say* goodbye|good_bye|bye to", "wanted to say goodbye|good_bye|bye",
        "thank you|thanks for everything|all_you_did|all_you_have_done ...6 goodbye|good_bye|bye|farewell",
        "goodbye|good_bye|bye|farewell ...3 thank_you|thanks for everything|all_you_did|all_you_have_done",
        "tell my ...2 " + _FAMILY + " ...3 love|loved|sorry|fault",
        "do_not|not hear from me", "not your|their|his|her|anyones fault", "if something happens",
        "when|after|once i am gone|dead|not_here|not_around", "when i go", "not have to deal with",
        "please take care of my", "one last", "called everyone",
        "wrote|writing|write|written|finished|left|leave|leaving my note*|letter*",
        "love you|you_all|them|you_guys ...5 sorry|goodbye|forgive", "sorry ...5 love you|you_all", "forgive me",
        "sorry for every*|all_of_it|being_like_this|being_a_burden", "wanted ...3 know i love",
        "deleted ...2 socials|accounts", "paid off my debts",
    ),
    "wants to die": (
        "want* ... die", "want* ... dead", "wish* i ... dead", "wish* i ... die",
        "wish* i ... never ... born", "hope i ... die", "better off dead",
        "rather be dead", "rather die", "ready to die", "kil me",
        "not ... want* to ... live", "not ... want* to be alive", "not ... want* to exist",
        "not ... want* to be ... here", "not ... want* to wake up",
        "longer want* to live", "tired of living", "tired of being alive",
        "tired|sick of being_here|existing|being_me|it_all|my_life|living",
        "stop living|existing", "not ...2 want* to do this", "hate my self|my_life|being_alive|being_me",
        "am a failure",
        "want* to disappear", "disappear forever",
        "rather not be alive", "rather not ... live", "rather not ... exist", "rather not be here",
        "sleep forever", "never wake up", "not ... wake up", "done with life", "done with living",
        "am done with ... every thing", "am done with it all", "tired of life",
        f"{_WISH} ...6 {_DEATH}",
        f"{_DEATH} ...3 would_be|sounds|seems|is|feels ...2 relief|peace*|nice|better|easier|good|welcome|"
        "only_way|answer",
        "being dead", "be dead !tired|serious|sure|set|on|in|last", "i should be dead", "should have died",
        "not have survived", "deserve to die", "why am i|i_am still alive|here", "still alive",
        "not worth living", "life is not worth", "live or die", "if i die|died|was_dead|were_dead",
        "not to exist", "stop exist*", "not exist* any more", "to not be here|alive|exist|wake_up",
        "not be here any more",
        "never been born", "god take* me", "pray* ...3 take me", "kills me", "takes me", "so i can go",
        "go to sleep and not|never", "everything to go dark", "want* ...3 gone", "not exist", "did not exist",
        "death ...3 relief|peace*|welcome|better", "think* about death|dying",
        "feel* like ...2 dying|going_to_die|i_am_dying",
    ),
    "self-harm": (
        "hurt* my self", "harm* my self", "self harm*", "self injur*", "cut* my self",
        "cutting again", "burn* my self", "starv* my self", "slit* my wrist*",
        "cut|cutting|cuts !my_hair|hair|my_finger|finger|my_thumb|thumb|my_pill|pill|pills|the_pill|"
        "tablet|my_dose|back|down|out|in_line|line|my_nails|nails|the_grass|grass|the_lawn|costs|it_close",
        "sh again|urge*|urges|relapse", "relaps* on|into sh", "doing|started|start|stop* sh", "sh free|clean", "shing", "sh ing",
        "burn* my arm|arms|skin|leg|legs|wrist*", "lighter|cigarette ...4 my arm|arms|skin|leg|wrist",
        "burned|burnt my self", "scratch* ...4 bled|bleed|blood", "until|till|til it|they|i bled|bleed*",
        "scratch* my self|my_skin|my_arms|my_legs",
        "carved|carving|carve", "hit* my self", "hit* my head", "hitting myself", "punch* ...4 on purpose",
        "on purpose",
        "bit* my ...2 until|till|til", "banged my head", "slic* my", "urge to harm", "hurt me on purpose",
        "want to hurt",
    ),
    "overdose": (
        "over dos*", "took all ... pills", "take all ... pills", "too many ... pills",
        "too many ... med*", "whole bottle", "bunch of pills", "handful of pills",
        "pill* to end", "pill* to die", "med* to end", "stockpil*",
        "took|taken|swallowed|drank|ate all|every*|way_too|too_much|too_many|"
        "a_lot|lots|a_bunch|a_handful|double|triple|the_rest|extra|whole|entire|more_than|the_whole|everything",
        "take|taking|swallow|drink everything|way_too|too_many|a_bunch|a_handful",
        "took|taken|swallowed my whole|entire", "pumped my stomach", "stomach pumped", "icu",
        "woke up in the|a hospital|er",
        "after what i did", "found me after|unconscious|on_the_floor",
        "attempt* !to_make|to_come|to_get|to_call|to_be|to_arrive",
        "tried|trying to kil*|end|hang|od|overdose|drown|die|jump|take_my|cut|slit",
        "in the er|hospital ...3 because|after|overdose|attempt", "bottles of", "took the pills", "took pills",
    ),
    "hopelessness": (
        "no way out", "can not go on", "could not go on", "can not do this any more",
        "can not take it any more", "can not take this any more", "can not live like this",
        "giv* up on life", "giv* up on living", "good bye forever", "final good bye",
        "this is good bye", "am a burden", "being a burden", "such a burden",
        "burden to every*", "burden on every*", "better off without me",
        "nothing to live for", "no reason to live", "no point in living",
        "no point living", "no point in life", "hopeless*", "no hope", "am worthless",
        "tired of every thing", "care if i ... gone", "better off if i ... gone",
        "no body would ... miss me", "no one would ... miss me", "no body would ... care",
        "no one would ... care", "no body would ... notice", "no one would ... notice",
        "not see the point", "no point any more", "what is the point", "feel* like giv* up",
        "just giv* up", "want* to give up", "am giv* up", "want* ... all to stop", "make it all stop",
        "pain to end", "pain to stop", "good bye every*", "can not do this", "can not cope",
        # hopelessness
        "no light|future|hope|options|way_out|point|escape", "no reason to keep|go_on|be_here|stay|try|get_up",
        "out of hope|options", "nothing left",
        "nothing matters", "nothing ...2 ever ...3 better", "never ...3 get_better|going_to_end|ends|improve",
        "nothing ...3 going_to|will|ever change|get_better|help",
        "not ...2 see my self ...2 getting_through|making_it|surviving|living|alive|in|get_through|make_it|being_here|here|around|being_alive",
        "not ...4 can keep_going|go_on|keep_living|survive|hold_on|last_much",
        "am drowning !in", "to keep living|to_stay_alive|to_go_on",
        "exhausted|tired|sick|weary of|from being_alive|living|existing|life",
        "suffer*|miserable|unhappy ...2 because of me", "hurt every*|everyone|all_the_people",
        "will not be a problem|burden|bother",
        "not matter any_more|soon|much_longer", "rest forever", "go away permanently|forever",
        "permanent solution|fix|way_out|sleep|rest",
        "ready to be done|gone|dead|over", "not ...3 make it through|much_longer|past",
        "not ...2 make it to next_week|the_weekend|my_birthday|christmas|the_end_of|friday|the_morning",
        "sorry mom|dad|mum|mommy|daddy|mama|papa|mother|father !is|will|can|said|says|has|and_i|just|was|"
        "wants|needs|asked|called|texted|for_the",
        "want* ...2 be_with|see|join my ...2 " + _FAMILY + " again|soon|in_heaven",
        "never going to end", "what is ...2 the point", "why bother", "breaking point",
        "end of my rope", "i give up !on", "i gave up !on",
        "giv*|gave up on every*|my_self|me|it_all|trying|my_life", "given up", "i am done fighting|trying",
        "done fighting",
        "tired of trying|fighting", "can not keep ...2 going|doing|living|fighting", "keep going like this",
        "completely empty", "pointless", "nothing works", "treatment ...3 not working",
        "nothing changes", "have nothing", "not ... get better", "no future", "see a future",
        "can not ... any more", "done with every*",
        # burdensomeness and not belonging
        "burden*", "better off",
        "happier|easier|relieved|free|calmer|lighter|fine|better ...4 without_me|of_me",
        "happier|easier|relieved|free|calmer|lighter ...4 if_i",
        "without me",
        "if i was|were|am_not|was_not|were_not|did_not|never|just here|around|alive|gone|disappeared|died|in_it",
        "if i was_not|were_not|did_not",
        "if i ...2 disappear*|vanish*|was_gone|were_gone|died|was_dead|were_dead",
        "if i disappeared|disappear|was_gone", "dead weight",
        "waste of space|oxygen|air|life", "drain on",
        "dragging ...2 down", "drag* every* down", "ruin* every*", "do not belong", "not belong",
        "no_one|no_body|nobody|noone ...3 miss*|care*|notice*|need*|want*|love*", "tired of me", "sick of me", "how much longer ...2 can|do_this|take|keep|go_on", "if|whether anyone|anybody ...3 miss*|care*|notice*",
        "i do not matter", "do not matter to", "deserve* better than me|someone_better", "am a|such_a|just_a waste",
        "every*|everyone|everybody|my_family|they|people would ...2 relieved|happier|better_off|free",
        "worthless", "am useless", "so useless",
        "cause* every*|everyone|my_family|people|them ...2 pain|problems|trouble|stress|misery",
        "holding ...2 every*|everyone|them|my_family|him|her back", "hold* every* back",
        "never ...3 be happy|ok|okay|better|normal",
        "see ...2 way out", "any way out", "too much for every*", "rid of me", "never had me",
        "make* life|everything|things|it ...2 harder|worse for|on every*|my|the_people|people|them",
        "harder for every*", "only make* ...3 worse", "free of me",
    ),
    "medical emergency": (
        "can not breath* !through_my_nose|through_my_nose", "hard to breath*", "chest pain*", "chest hurt*",
        "pass* out", "fainted",
        "seizure*", "heart attack", "stroke", "heart ... racing", "call* an ambulance",
        "breath* ...2 hard|trouble|difficult*|struggl*",
        "trouble|difficulty|struggling|struggle|hard_time|hard ...2 breath*",
        "short of breath", "catch my breath",
        "barely|hardly|can_not|cant|not|struggl*|trouble ...2 breath* !through_my_nose|through_my_nose|"
        "through_my_mouth",
        "not responding|responsive|waking_up|breathing", "will not wake up", "is not waking", "gasp*",
        "not breathing",
        "chest ...3 tight*|pressure|heavy|crushing|squeez*|pain|hurt*|aching|ache", "tight* in my chest",
        "pressure in my chest", "lips ...2 blue", "blue lips", "blacked|black out", "lost consciousness",
        "unconscious", "unresponsive", "faint*", "convuls*", "seiz*", "face ...2 droop*", "arm ...2 numb", "slurr*",
        "heart ...6 pound*|racing|skipping|explod*|beating_out", "can not feel my arm|arms|face|leg|legs|side",
        "numb", "arm hurts", "throat ...5 closing|swell*", "vomit*|throwing_up|coughing_up|throw_up ...2 blood",
        "having a fit",
        "can_not|will_not|not stop shaking|seizing|convulsing|jerking", "no respira", "no puede respirar",
        "anaphyla*", "collaps*",
        "ambulance", "911", "can not|will_not stop vomiting|throwing_up",
    ),
}

# "no puedo más con este tráfico": an everyday nuisance, not despair.
_EVERYDAY_NUISANCES = "|".join(
    f"con_{article}_{thing}" for article in "el este la esta los estos las estas".split()
    for thing in "trafico calor frio trabajo tarea lluvia ninos jefe examen clima dieta ayuno espera fila sueno "
                 "dolor_de_cabeza".split()
)
# Spanish, in the same labels; folded (no accents, "ñ" read as "n") and squashed like the text.
_YO = "me|mi|yo|mis|estoy|quiero|voy"
_CRISIS_PHRASES_ES: dict[str, tuple[str, ...]] = {
    "suicide": (
        "suicid*", "matarme", "me quiero matar", "me voy a matar", "me mato !el|la|de|con|los|las|mi",
        "hoy me mato", "quitarme la vida", "quitar* la vida",
        "acabar|terminar* con todo|mi_vida|esto|mi_sufrimiento|mi_dolor|mi_existencia|el_sufrimiento",
        "no me siento segur*", "hacer una locura", "pensamientos suicidas",
        "pensamiento* de ...2 muerte|morir|matarme|suicid*|quitarme|acabar",
        "pens* en ...2 matarme|morir*|la_muerte|quitarme|acabar|terminar|suicid*",
        "pienso en la muerte", "ideas de ...2 quitarme|matarme|suicid*|morir", "ganas de matarme|morirme|morir",
        "ahorcar*", "colgarme", "tirarme|aventarme|lanzarme|arrojarme", "dispararme", "envenenarme", "ahogarme",
        "cuerda|soga|pistola|arma|navaja|cuchillo|veneno|revolver|rifle|escopeta|navajas ...5 " + _YO
        + "|lista|listo|tengo|compre|aqui|mano|guardad*",
        "tengo|compre|compro|consegui ...3 cuerda|soga|pistola|arma|navaja|cuchillo|veneno|pastillas_guardadas",
        "juntando|guardando|ahorrando|escondiendo pastillas",
        "pastillas|pistola|cuerda|soga|arma|navaja ...3 lista|listas|listo|listos|preparada*|preparado*|esta_noche",
        "lista|listas|listo|listos|preparada*|preparado* ...3 pastillas|pistola|cuerda|soga|arma|navaja",
        "tirar*|aventar*|lanzar*|arrojar*|saltar|brincar ...2 puente|edificio|azotea|tren|vias|techo|balcon|metro|carro",
        "puente|azotea|edificio|tren|vias ...4 tirarme|aventarme|lanzarme|saltar",
        "estoy en el|la puente|azotea|vias|techo|orilla", "estrellar* ...4 carro|coche|auto|muro",
        "manejar|estrellar*|chocar*|aventar* ...3 contra", "al tren",
        "cuantas pastillas", "dosis letal", "letal", "como ...2 hacer_una_soga|matarme|suicidarme|morir",
        "ya tengo un plan", "tengo un plan !para_llegar|para_ir|para_el|para_la|de_pago|de_seguro",
        "ya ...3 decidi", "lo voy a hacer", "lo hago", "hoy es el dia", "esta noche ...3 lo", "ya se como",
        "carta|cartas de despedida",
        "cartas|carta|nota|notas para|a mis|mi hijos|hija|hijo|familia|mama|papa|esposo|esposa",
        "despedir*", "me despedi", "despedida", "adios para siempre", "adios a todos",
        "decir|decirles|decirte|decirle adios",
        "testamento", "deje todo arreglado|listo|en_orden", "regale ...3 cosas|perro|gato|todo|mis",
        "deje|regale|di|dejo ...3 cosas|todo|pertenencias ...2 a_mis|a_mi",
        "perdon|perdonen|perdoname|perdonenme por todo", "perdon ...3 adios", "ultimo mensaje",
        "diganle a mi|mis", "cuiden a mi|mis", "cuando yo no este", "ya no este", "cuando me vaya", "cuando no este",
        "intent* ...2 matarme|suicidarme|quitarme|ahorcarme|morir", "trate de ...2 matarme|suicidarme|quitarme|morir",
        "esta noche me tomo", "me voy a tomar todas",
    ),
    "wants to die": (
        "no quiero vivir", "quiero morir*", "me quiero morir", "quiero ...3 morir*", "ganas de morir*",
        "quisiera|ojala|deseo|preferiria|prefiero|gustaria ...4 muert*|morir*|muera|muriera|no_despertar|desaparecer|"
        "no_existir|no_haber_nacido|nunca_hubiera_nacido",
        "no despertar*", "nunca hubiera nacido", "no haber nacido", "no quiero estar aqui|viv*",
        "estar muert* !de", "ya no quiero", "no me importa si me muero", "si me muero", "quiero desaparecer",
        "no quiero existir", "dormir y no despertar", "mejor me muero", "me muero ya|de_una_vez",
        "ojala|quisiera|deseo ...2 no_existiera|no_existir|dejar_de_existir|no_estuviera", "seguir viviendo",
        "razon para|a vivir|seguir", "formas|maneras|forma|manera|como de|para morir*|matarme|suicid*|quitarme",
        "tengo la fecha !de|para", "nada ...2 cambiar|mejorar", "no puedo con esto|todo|mi_vida|la_vida",
        "no hay esperanza", "no le importo|intereso a nadie", "importo a nadie",
        "carta|cartas|nota|notas ...3 a|para mis|mi ...1 hijos|hija|hijo|familia|mama|papa|papas|padres|esposo|esposa|hermanos|hermana|hermano", "que todo termine|se_acabe|acabe|pare",
        "irme|ir de_este_mundo|para_siempre",
        "no ...2 quiero despertar*",
        "tengo todo listo|preparado|planeado !para_manana|para_la_cita|para_mi_cita|para_ir",
        "me despido", "ultima vez ...3 escrib*|hablo|ven|saben|mensaje", "lo que voy a hacer",
        "tome|trague ...2 pastillas|medicinas|medicamentos de mi|otra_persona",
        "dejar de existir|vivir|respirar", "ganas de vivir", "ganas de seguir !con|en|la|el|los|las|a|trabajando|esperando|aqui", "sentido a|de vivir|la_vida|seguir",
        "encuentro sentido", "me odio", "no sirvo", "no valgo", "soy un|una inutil|fracaso|fracasada|fracasado",
        "no quiero seguir", "quisiera estar muert*", "me quiero ir para siempre",
        "morirme !de", "me muriera", "me muera",
    ),
    "self-harm": (
        "cortarme", "cortandome", "me corto", "me estoy cortando",
        "me corte !el_pelo|el_cabello|el_fleco|las_unas|el_dedo",
        "me volvi a cortar", "volvi a cortarme", "lastimarme", "hacerme dano", "me hice dano",
        "me estoy haciendo dano",
        "me lastime", "autolesion*", "me ...2 lastimando|hiriendo|golpeando|quemando", "me quem* con",
        "cigarro*|encendedor ...3 quem*", "quem* ...3 cigarr*|encendedor", "me rasgun*", "rasgun* ...2 brazos|piernas|piel", "me quiero cortar !el_pelo|el_cabello|las_unas|el_fleco",
        "golpe* ...4 pared|muro", "cortes !de", "cortadas", "me ...2 cortando", "me hice cortes",
        "queme|lastime|corte|pegue|hice ...4 a proposito", "me queme con",
        "hasta sangrar", "hasta que sangr*", "me pegue", "golpearme",
    ),
    "overdose": (
        "sobredosis", "me tome todas|todo|toda|el_frasco|la_caja|muchas|un_monton|mas_de|demasiad*",
        "tome|trague|tragar*|tomarme|tragarme todas|todo|toda|el_frasco|la_caja|un_frasco|una_caja|muchas|"
        "un_monton|demasiad*",
        "voy a tomar|tomarme todas|todo|toda|el_frasco|la_caja|un_frasco|una_caja",
        "frasco|caja|botella ...2 de_pastillas|entero|entera|completo|completa",
        "tome todas|muchas|demasiadas", "el frasco entero", "la caja entera", "un monton de pastillas",
        "muchas pastillas", "todas las pastillas", "todas mis pastillas",
        "lavado de estomago", "intento de suicidio", "me corte las venas",
    ),
    "hopelessness": (
        "no aguanto", "ya no aguanto",
        "no puedo mas !" + _EVERYDAY_NUISANCES + "|de_1|de_2|de_to|de_3|de_4|de_5|de_una|de_dos|de_tres|de_media",
        "ya no puedo $", "no puedo seguir",
        "no tengo esperanza*", "sin esperanza*", "no hay salida", "no tengo|no_hay|sin|no_veo|no_le_veo ...1 salida",
        "todo esta perdido", "esta todo perdido",
        "cans* de luchar|pelear|intentar|seguir|vivir|la_vida|existir|todo", "nada tiene sentido",
        "sin sentido", "no tiene sentido",
        "no le veo sentido", "no vale la pena", "me rendi", "me rindo", "no tengo razon para vivir",
        "razon para vivir",
        "nunca voy a mejorar", "nada va a mejorar", "no voy a mejorar", "nunca va a terminar", "no le veo futuro",
        "cansad*|hart* de todo|vivir|la_vida|existir", "nada sirve", "no sirve de nada", "ya no tengo ganas de nada",
        # burdensomeness
        "mejor sin mi", "mejor si ...2 no_estuviera|no_existiera|me_muero|me_voy|desaparezco|muero",
        "si yo no estuviera", "si no estuviera", "si desaparezco", "si me muero", "si me fuera", "sin mi",
        "soy una carga", "carga para", "una carga", "estorbo", "estoy de mas", "de mas en",
        "nadie me ...2 extran*|necesita|quiere|va_a_extranar|extranaria", "a nadie le import*",
        "no pertenezco", "mas felices|tranquilos|faciles|facil ...3 si|sin",
    ),
    "medical emergency": (
        "dolor ...5 pecho", "duele ...5 pecho", "pecho ...3 duele|dolor|apret*|presion", "no puedo respirar",
        "me cuesta respirar", "me falta ...2 aire", "falta de aire", "dificultad para respirar", "desmay*",
        "convuls*", "infarto", "ataque al corazon", "derrame", "ambulancia", "me ahogo",
        "corazon ...4 rapido|fuerte|salir|explotar|acelerado", "salir el corazon", "no responde",
        "no reacciona", "labios morados", "perdi el conocimiento", "perdio el conocimiento",
    ),
}
# Saying one will not be here is a crisis unless the text speaks of a trip ("I'll be gone next
# week on vacation"); these are read only when it does not.
_AWAY = (
    "i_will_not|i_am_not_going_to|i_will_no_longer be here|around", "i_will_not|i_am_not_going_to be here|around",
    "not|not_going_to|will_not be here|around any_more|much_longer|for_long|by|tomorrow|for_my|for_the_next|next",
    "i will be gone !all|for|until|til|till|on|this|next|from|the|in|at|most|monday|tuesday|wednesday|"
    "thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun",
    "be gone before|by|soon|tomorrow|tonight|forever", "gone forever", "be around|here much_longer|for_long|any_more",
    "do_not_think|not_sure_if|not_sure|doubt ...3 be_here|be_around|be_alive|make_it",
    "will not need ...3 any more", "not need them|these|reminders|appointments|it any more",
    "cancel* ...3 will not need", "cancel everything|all_my_appointments|all_of_my_appointments",
    "no voy a estar", "ya no las|los voy a necesitar", "cancelen mis citas", "no las|los voy a necesitar",
)
_TRAVEL = (
    "vacation*|trip|trips|travel*|holiday*|cruise|conference|flight|flying|fly|abroad|overseas|deploy*|"
    "camping|wedding|visiting|business|moving|relocat*|vacaciones|viaje|viajando|viajar|vuelo|boda|mudanza",
    "out of town|state|the_country", "fuera de la ciudad",
)
# A medical word about the past ("I had a seizure years ago, is ketamine ok?") is history.
_HISTORY = (
    "years|year|months ago", "last year", "as a kid|child|teen*", "history of", "in the past", "when i was younger",
    "growing up", "hace anos|meses", "el ano pasado", "de nina|nino|joven", "antecedentes",
)
_NOW = (
    "now", "right now", "today|tonight|currently|still|just|since|after|again|help|911|ambulance|having|keep|keeps",
    "ahora|hoy|ayuda|ambulancia|todavia|despues|desde",
)
CRISIS_LABELS = tuple(_CRISIS_PHRASES)
_MEDICAL = "medical emergency"
_LABEL_PHRASES = {label: _CRISIS_PHRASES[label] + _CRISIS_PHRASES_ES[label] for label in CRISIS_LABELS}


@functools.cache
def _rx(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a phrase list, compiled on first use (all of them take most of a second)."""
    return re.compile("|".join(map(_phrase, phrases)))

# Idioms masked before the phrases are searched ("dying to know", "my phone died",
# "me muero de hambre"), so that death words in them do not count.  Narrow on purpose: a
# mask must never hide a crisis, so each names the idiom's own words.
_IDIOMS = (
    "dying|dy* to|for know|see|try|hear|meet|get|go|eat|find|talk|visit|start|tell|a|some|coffee|food|pizza",
    "dead|died|dying|die of|from laughter|laughing|boredom|hunger|thirst|heat|cold|embarrassment|cringe",
    "died|dying|die laughing",
    "dead tired|serious|sure|set|wrong|last|center|end|ass|on_my_feet|in_the_water|battery|phone|zone",
    "phone|battery|laptop|tv|car|plant|plants|wifi|charger|cell|internet|computer|tablet|ipad|headphones|"
    "earbuds|remote|flowers is|just|has|already|was|went|s died|dead|dying|die",
    "phone|battery|laptop|tv|plant|plants|wifi|charger|cell|internet|computer|tablet|ipad|remote died|dead|dying",
    "lol|lmao|lmfao|haha*|omg i am dead|dying|ded", "i am dead|dying lol|lmao|lmfao|haha*|omg",
    "muero|muerto|muerta|muertos|muertas|muriendo|morir|morirme|murio de|del hambre|sed|sueno|cansancio|risa|"
    "frio|calor|ganas|nervios|miedo|aburrimiento|verguenza|envidia|amor|celos|gusto|gripe",
    "muero|muriendo por", "se me murio",
    "murio el|la|mi celular|cel|telefono|bateria|carro|coche|laptop",
    "celular|cel|telefono|bateria ...2 muert*",
)
_NOOSE_RE = re.compile(r"\bno{2,}s(?:e|es|ing)?\b")  # squashed, "noose" would read "nose"
_OD_RE = re.compile(r"\bo ?d(?:s|ed|ing)?\b")  # "OD" as a word, "o.d.", "ODing"; not squashed
# A counted dose ("took 20 of my pills") without flagging the daily "I took my pills".
_COUNTED_DOSE_RE = re.compile(
    r"\b(?:took|taken|take|swallowed|swallow)\b(?: \w+){0,2} (?:\d+|ten|twenty|thirty|fifty|hundred)"
    r"(?: \w+){0,3} (?:pills?|tablets?|meds|medications?|capsules?|sleeping)\b"
)
# Searched with all spaces removed too, to catch "s u i c i d e" and "kill my-self".
_SQUEEZED = {"suicide": ("suicid", "kilmyself", "unalive", "endmylife", "matarme"),
             "self-harm": ("selfharm",), "overdose": ("overdos",),
             "wants to die": ("wantodie", "wanadie", "wantobedead", "wishiwasdead", "quieromorir")}

_LEET = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "+": "t"}
_LEET_I = str.maketrans({**_LEET, "1": "i", "|": "i"})
_LEET_L = str.maketrans({**_LEET, "1": "l", "|": "l"})

# Keyed by the squashed word; expanded so that one phrase covers every spelling: English
# contractions and texting shorthand, Spanish shorthand ("q", "xq", "toy", "kiero").
_CANONICAL = {
    "dont": "do not", "dnt": "do not", "doesnt": "does not", "didnt": "did not",
    "cant": "can not", "canot": "can not", "couldnt": "could not", "wont": "will not",
    "im": "i am", "wana": "want to", "wanta": "want to", "gona": "going to",
    "2": "to", "u": "you", "myslef": "myself", "mysef": "myself", "myslf": "myself",
    "ima": "i am going to", "ive": "i have", "il": "i will", "itl": "it will", "isnt": "is not",
    "wasnt": "was not", "werent": "were not", "wouldnt": "would not", "shouldnt": "should not",
    "aint": "am not", "idc": "i do not care", "idgaf": "i do not care", "idk": "i do not know",
    "abt": "about", "bout": "about",
    "thinkin": "thinking", "kilin": "killing", "tryin": "trying", "rn": "right now", "ur": "your",
    "bc": "because", "cuz": "because", "coz": "because", "w": "with", "pls": "please", "plz": "please",
    "everyones": "everyone", "theyd": "they would", "theyl": "they will", "youd": "you would",
    "none": "no one", "noone": "no one", "nobodys": "no body", "tmrw": "tomorrow", "tmr": "tomorrow",
    "tomorow": "tomorrow", "tonite": "tonight", "tn": "tonight", "2nite": "tonight", "b4": "before",
    "ppl": "people", "whats": "what is", "thats": "that is", "theres": "there is", "its": "it is",
    "shes": "she is", "hes": "he is", "lil": "little", "sm": "so much", "alot": "a lot",
    "wld": "would", "hv": "have", "b": "be", "cud": "could", "shud": "should", "tho": "though", "ded": "dead",
    "q": "que", "xq": "porque", "pq": "porque", "porq": "porque", "xk": "porque", "x": "por",
    "toy": "estoy", "toi": "estoy", "tas": "estas", "kiero": "quiero", "qiero": "quiero",
    "kero": "quiero", "kisiera": "quisiera", "tmb": "tambien", "tb": "tambien", "xfa": "por favor",
    "porfa": "por favor", "aki": "aqui", "nd": "nada", "vdd": "verdad", "bn": "bien", "mjr": "mejor",
    "pa": "para", "nomas": "no mas", "kien": "quien", "ke": "que",
}


def _crisis_words(text: str) -> list[str]:
    text = re.sub(r"[\W_]+", " ", text.replace("'", ""))
    return [_CANONICAL.get(_squash(w), w) for w in text.split()]


def _leet(text: str, table: dict[int, str]) -> str:
    """Leetspeak read in words that hold a letter ("k1ll", "$uicide"); numbers stay numbers."""
    return re.sub(r"\S+", lambda m: m[0].translate(table) if _HAS_LETTER.search(m[0]) else m[0], text)


_HAS_LETTER = re.compile(r"[^\W\d_]")


def _crisis_readings(text: str) -> tuple[list[str], list[str], str]:
    """Readings of `text` to search: folded, punctuation gone, contractions expanded, in
    plain and two leetspeak spellings (1 as i, 1 as l); the same squashed (letters repeated
    in a row counted once) with idioms masked; and the plain squashed one with no spaces."""
    base = re.sub(r"\bod'd\b", "od", _fold(text))  # "OD'd" would otherwise read "odd"
    base = re.sub(r"\bw/o\b", "without", base)
    spellings = (base, _leet(base, _LEET_I), _leet(base, _LEET_L))
    plain = [" ".join(_crisis_words(v)) for v in spellings]
    squashed = [" ".join(_rx(_IDIOMS).sub(" ", _squash(v)).split()) for v in plain]
    return plain, squashed, _squash(re.sub(r"[\W_]+", "", base))


# ---------------------------------------------------------------- crisis: numbers

_BP_RE = re.compile(r"(?<![\d/.:,])(\d{2,3})\s*(?:/|over|sobre|x|-)\s*(\d{2,3})(?![\d/.:%])")
_BP_WORDS_RE = re.compile(r"\b(?:bp|blood pressure|pressure|presion|presion arterial)\b\D{0,20}?(\d{3})\b")
_EMERGENCY_BP = (180, 110)  # systolic or diastolic at or above: an emergency (CLINICAL.md)
_NUMBER_NAMES = {
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "hundred": 100,
    "dozen": 12, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10, "doce": 12,
    "quince": 15, "veinte": 20, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "cien": 100,
}
_TAKE_WORDS = frozenset("took taken take taking swallowed swallow popped ate drank tome trague tomado".split())
_APPROX = frozenset("like about around maybe almost over nearly some a an the my of como unas unos mas de "
                    "casi sobre to".split())
_UNITS = frozenset(
    "mg mgs milligrams mcg ml g gram grams iu units unit minutes minute mins min hours hour hrs hr "
    "seconds secs days day weeks week months years times time am pm oclock o miles mile blocks "
    "lbs pounds kg steps puffs sips bites breaths deep dollars bucks percent minutos minuto horas "
    "hora dias dia semanas meses anos veces pesos cuadras kilos gotas drops ml".split()
)
_CONTAINERS = frozenset(
    "bottles bottle boxes packs packets frascos frasco cajas caja blister blisters strips".split()
)
_LOW_SCORE_ES = re.compile(
    r"(?<![\d.,/])\b(?:0|1|2|cero|uno|dos)\s*(?:de|sobre)\s*(?:10|diez)\b"
    "|^\\W*(?:un\\s+)?(?:cero|uno|un\\s+[012]|un\\s+dos)\\s*(?:$|[,.;:!¡?¿\\-]|\\s+(?:hoy|todo|muy|mal|"
    "fatal|horrible|pesimo|ya|no)\\b)",
)


def _emergency_pressure(folded: str) -> bool:
    for m in _BP_RE.finditer(folded):
        high, low = int(m[1]), int(m[2])
        if 70 <= high <= 320 and 30 <= low <= 220 and high > low and (
                high >= _EMERGENCY_BP[0] or low >= _EMERGENCY_BP[1]):
            return True
    return any(_EMERGENCY_BP[0] <= int(m[1]) <= 320 for m in _BP_WORDS_RE.finditer(folded))


def _counted_dose(folded: str) -> bool:
    """"took 40 of my seroquel", "swallowed like 30 trazodone", "me tome 20 clonazepam",
    "took 2 bottles of advil": a number of five or more (or any number of bottles) within a
    few words after a word of taking, not followed by a unit ("took 10 minutes")."""
    words = re.findall(r"[^\W_]+", folded)
    for i, word in enumerate(words):
        if word not in _TAKE_WORDS:
            continue
        for j in range(i + 1, min(i + 5, len(words))):
            w = words[j]
            n = int(w) if w.isdigit() and len(w) < 5 else _NUMBER_NAMES.get(w)
            if n is None:
                if w in _APPROX:
                    continue
                break
            after = words[j + 1] if j + 1 < len(words) else ""
            if after in _CONTAINERS or (n >= 5 and after not in _UNITS):
                return True
            break
    return False


def detect_crisis(text: str) -> tuple[str, ...]:
    """Labels (in CRISIS_LABELS order) of the crisis language found in `text`, or ().

    Over-flags rather than misses: contractions and texting shorthand expanded ("dont" ->
    "do not", "wanna" -> "want to", "im" -> "i am", "q" -> "que", "toy" -> "estoy"),
    leetspeak read, repeated letters tolerated ("diiie"), words allowed to run together,
    accents, case and punctuation ignored; English and Spanish.  Never raises."""
    try:
        return _detect(text)
    except Exception:  # noqa: BLE001 - a reader bug must not drop a crisis text: flag it
        return ("suicide",) if text and text.strip() else ()


def _detect(text: str) -> tuple[str, ...]:
    plain, squashed, squeezed = _crisis_readings(text)
    squashed = list(dict.fromkeys(squashed))  # the leetspeak readings often equal the plain one
    found = {label for label, phrases in _LABEL_PHRASES.items() if any(_rx(phrases).search(v) for v in squashed)}
    if any(_rx(_AWAY).search(v) for v in squashed) and not any(_rx(_TRAVEL).search(v) for v in squashed):
        found.add("suicide")
    if found == {_MEDICAL} and any(_rx(_HISTORY).search(v) and not _rx(_NOW).search(v) for v in squashed):
        found = set()
    found |= {label for label, stems in _SQUEEZED.items() if any(s in squeezed for s in stems)}
    folded = _fold(text)
    if any(_NOOSE_RE.search(v) for v in plain):
        found.add("suicide")
    if any(_OD_RE.search(v) or _COUNTED_DOSE_RE.search(v) for v in plain) or _counted_dose(folded):
        found.add("overdose")
    if _emergency_pressure(folded):
        found.add(_MEDICAL)
    if _LOW_SCORE_ES.search(folded.strip()):
        found.add("hopelessness")
    return tuple(label for label in CRISIS_LABELS if label in found)


def crisis_kind(terms: tuple[str, ...] | list[str]) -> str | None:
    """"suicidal", "medical" or None for the labels `detect_crisis` found.

    A medical emergency is answered with the emergency number first, a suicidal crisis with
    the crisis line first; when both are present the suicidal crisis wins."""
    if any(t != _MEDICAL for t in terms):
        return "suicidal"
    return "medical" if terms else None


_SPANISH_WORDS = frozenset(
    "que de del el la los las y o es son soy estoy esta estas este esto eso estar estare estaba por "
    "para con sin un una uno unos unas dos tres cero mi mis tu te se le les lo nos yo ella el ya pero "
    "muy mucho mucha muchas muchos mas menos gracias hola adios cita citas quiero quisiera tengo "
    "tiene puedo puede pueden hoy manana ayer bien mal todo toda todos todas nada nadie nunca "
    "siempre si porque q xq toy kiero como cuando donde cuanto cuantas cuantos hora horas tiempo "
    "favor ayuda parar alto cancelar confirmo confirmado necesito voy vamos llego llegar tarde "
    "buenos buenas dias noches noche semana siento senti dolor cabeza pecho nauseas mareo mareada "
    "mareado vida morir muerte matar aguanto tambien pastillas esposo esposa hijo hija hijos "
    "mama papa casa llevar ir hay ahi aqui alli vez veces otra otro solo sola ojala vivir despertar "
    "hubiera nacido deseo importa pensado pense intente corte proposito esperanza salida vale pena "
    "veo futuro estorbo pertenezco ningun lado necesita respirar cuesta desmaye presion sobre "
    "vemos lunes martes miercoles jueves viernes sabado domingo dura estacionamiento gratis "
    "infusion infusiones faltan feliz navidad volvi perdon sueno hambre cansada cansado gustaria "
    "preferiria mientras duermo carta cartas despedida familia puedes quieres estas".split()
)
_SPANISH_ENDINGS = ("cion", "ando", "iendo", "arme", "erme", "irme", "ado", "ada", "amos", "aste")
_ENGLISH_WORDS = frozenset(
    "the i you to and my is it in of for have be can this that im its am are was with just so "
    "thanks thank ok okay yes please what when how will would see get at on not dont cant feel "
    "feeling want today tomorrow appointment time your we do did been had has they he she "
    "going gonna wanna really about after before all anymore again".split()
)


def looks_spanish(text: str) -> bool:
    """Whether a text reads as Spanish rather than English (a simple word count), so that
    the answer can be in Spanish.  Unsure or no words: False (English)."""
    try:
        folded = _fold(str(text))
        words = [_CANONICAL.get(w, w) if w in ("q", "xq", "toy", "kiero") else w
                 for w in re.findall(r"[^\W\d_]+", folded.replace("'", ""))]
        spanish = sum(w in _SPANISH_WORDS or (len(w) > 4 and w.endswith(_SPANISH_ENDINGS)) for w in words)
        spanish += 2 * sum(c in "ñ¿¡" for c in str(text))
        english = sum(w in _ENGLISH_WORDS for w in words)
        return spanish > english
    except Exception:  # noqa: BLE001 - pure helper on untrusted text: never raise
        return False


# ---------------------------------------------------------------- keywords

def _keys(words: set[str] | frozenset[str]) -> frozenset[str]:
    return frozenset(_squash(w.lower()) for w in words)


_OUT = _keys(OPT_OUT_WORDS)
_OUT_WITH_POLITE = _keys(OPT_OUT_WORDS - OPT_OUT_ALONE_WORDS)
_OUT_LEADING = _keys({"stop", "stopall", "unsubscribe", "optout", "parar", "detener"})
_IN = _keys(OPT_IN_WORDS)
_HELP = _keys(HELP_WORDS)
_POLITE = _keys(POLITE_WORDS)
_JOINED = _keys({"optout", "stopall", "unstop"})
_CANCEL = _keys(CANCEL_WORDS)


def _join_pairs(words: list[str]) -> list[str]:
    out: list[str] = []
    for word in words:
        if out and out[-1] + word in _JOINED:
            out[-1] += word
        else:
            out.append(word)
    return out


def _keyword_kind(words: list[str], crisis: tuple[str, ...]) -> tuple[str, str] | None:
    """("stop"|"start"|"help", the keyword) or None, by the rules in the module docstring."""
    keys = _join_pairs([_squash(w) for w in words])
    core = {k for k in keys if k not in _POLITE}
    polite = len(core) < len(set(keys))
    first = sorted(core)[0] if core else ""
    if core and core <= _OUT and (not polite or core <= _OUT_WITH_POLITE):
        return "stop", next((k for k in keys if k in _CANCEL), first)
    if not polite and core and core <= _IN:
        return "start", first
    if not polite and core and core <= _HELP:
        return "help", first
    if keys[0] in _OUT_LEADING and (crisis or _ABOUT_MESSAGES & set(keys)):
        return "stop", keys[0]
    return None


# Words that show a leading STOP is about the texts, not about something else.
_ABOUT_MESSAGES = frozenset(
    "text texts texting txt txts message messages messaging msg msgs sms sending send contacting "
    "contact reminders reminder spam spamming bothering number "
    "mensajes mensaje textos texto enviar envien enviarme manden mandar mandarme escribir escribirme".split()
)


# ---------------------------------------------------------------- confirm / reschedule / thanks

# Matched against the words joined by single spaces ("I'll" is "ill", "Sí" is "si").
def _words_alt(part: str) -> str:
    return "|".join(sorted((w for lang in LANGUAGES for w in KEYWORDS[lang][part]), key=len, reverse=True))


_PRE = rf"(?:(?:{_words_alt('pre')}|thank you|buenos dias|buenas tardes) )*"
_POST = rf"(?: (?:{_words_alt('post')}|thank you|muchas gracias|see you(?: then| there| soon)?|nos vemos))*"
_WHAT = (r"(?: (?:my |the |la |mi )?(?:appointment|appt|visit|infusion|session|booking|cita|infusion|"
         r"sesion))?")
_CONFIRM_RE = re.compile(rf"{_PRE}(?:{_any_of('confirm')}){_WHAT}{_POST}")
_SOFT_CONFIRM_RE = re.compile(rf"{_PRE}(?:{_any_of('soft_confirm')}){_POST}")
_RESCHEDULE_RE = re.compile(rf"{_PRE}(?:{_any_of('reschedule')}){_WHAT}{_POST}")
_VISIT_CHANGE_RE = re.compile(_any_of("visit_change"))
_NEGATIONS = set("no not dont never nevermind nope didnt doesnt wont without".split())
_ACK_HEADS = _all("ack_heads")
_ACK_WORDS = _all("ack_words")
# Emoji that say "yes" to a reminder, and emoji that only say thanks or hello.
_YES_EMOJI = frozenset("👍👌✅☑✔🆗")
_ACK_EMOJI = frozenset("😊🙂😀😃😄😁☺🙏❤♥💕💖💗💙💚💜🧡💛🤍🥰😍🤗✨🌞🌸🌷💐👋🙌👏💪😌😇😎🤩🥳⭐🌟")
_EMOJI_MODIFIERS = frozenset("\ufe0f\ufe0e\u200d🏻🏼🏽🏾🏿")


def _asks_reschedule(words: list[str]) -> bool:
    for i, word in enumerate(words):
        if word.startswith("resched") and not _NEGATIONS & set(words[max(0, i - 3):i]):
            return True
    joined = " ".join(words)
    for m in _VISIT_CHANGE_RE.finditer(joined):
        if not _NEGATIONS & set(joined[:m.start()].split()[-3:]):
            return True
    return False


def _symbols_kind(text: str) -> str:
    """A text with no words: "soft_confirm" (a thumbs-up), "ack" (a smile, a heart), or "empty"."""
    marks = [c for c in text if not c.isspace() and c not in _EMOJI_MODIFIERS and c not in ".!,~"]
    if not marks:
        return "empty"
    if any(c in _YES_EMOJI for c in marks) and all(c in _YES_EMOJI or c in _ACK_EMOJI for c in marks):
        return "soft_confirm"
    if all(c in _ACK_EMOJI for c in marks):
        return "ack"
    return "empty"


def _is_ack(words: list[str]) -> bool:
    return bool(words) and len(words) <= 6 and set(words) <= _ACK_WORDS and bool(set(words) & _ACK_HEADS)


# ---------------------------------------------------------------- mood scores

_NUMBER_WORDS = {w: i for lang in LANGUAGES for i, w in enumerate(KEYWORDS[lang]["numbers"])}
_NUM = r"(?:[0-9]+(?:\.[0-9]+)?|" + "|".join(_NUMBER_WORDS) + ")"
_OUT_OF_RANGE = Decimal(999)
_RANGE = rf"(?P<a>{_NUM})(?:\s*(?:-|–|—|to|or|a|o)\s*(?P<b>{_NUM}))?"
_NOT_AFTER = r"(?<![\w.:/$#-])"
_SCALE_RE = re.compile(
    rf"{_NOT_AFTER}{_RANGE}\s*(?:/|out\s+of|outta|of|de|sobre)\s*(?:10|ten|diez)(?!\w|[-.:/]\d)", re.I
)
_TOKEN_RE = re.compile(rf"{_NOT_AFTER}{_RANGE}(?:\s*-?\s*ish)?(?!\w|%|[-.:/]\d)", re.I)
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_NEXT_WORD_RE = re.compile(r"\s*[^\W_]+(?:'[^\W_]+)*")

_ADJECTIVES = {"low", "high", "good", "strong", "weak", "decent", "steady", "shaky", "bad"}
_STRONG_CUES = set("a an mood moods score rating rate rated solid say level un animo pain dolor".split())
_WEAK_CUES = {"about", "maybe", "probably", "prob", "honestly", "like", "feeling", "feel", "felt", "como",
              "diria", "creo", "tal", "vez", "unos", "es", "esta", "estoy", "sobre",
              "im", "its", "is", "was"}
_BLOCKERS = {"at", "by", "until", "till", "til", "before", "from", "on", "of", "room", "suite",
             "unit", "apt", "page", "step", "number", "no", "took", "take", "taking", "ext"}
_FOLLOWERS = set(
    "but and or today tonight now this though tho i im id ive feeling feel mood with w overall "
    "maybe ish so pretty for because bc cause cuz thanks thank thx ty lol haha too again still "
    "yesterday honestly mostly right atm after since "
    "pero y con hoy ahora gracias porque creo mas o menos ayer".split()
)
_ALL_CUES = _STRONG_CUES | _WEAK_CUES | _ADJECTIVES
_NOTE_FILLER = _ALL_CUES | set(
    "i id ive my it would today tonight now right overall out 10 ten so pretty much ish "
    "at give gives giving guess think "
    "thanks thank you thx ty ok okay lol un una como de yo hoy diria creo gracias".split()
)
_NOTE_LEADERS = set("but and today tonight now though tho with w so overall pero y con hoy".split())
_SEPARATORS = ",;:-–—.!?()/"


@dataclass(frozen=True)
class _Score:
    value: int
    start: int  # where the score phrase (cue words included) starts
    end: int
    derived: bool  # rounded from a decimal or taken from a range
    alone: bool


def _words_of(text: str) -> list[str]:
    return [w.lower().replace("'", "") for w in _WORD_RE.findall(text)]


def _number(word: str) -> Decimal:
    if word.lower() in _NUMBER_WORDS:
        return Decimal(_NUMBER_WORDS[word.lower()])
    if len(word.partition(".")[0]) > 3:  # far out of range (and keeps Decimal in precision)
        return _OUT_OF_RANGE
    return Decimal(word)


def _value(m: re.Match[str]) -> tuple[int, bool]:
    """The score a number or range stands for (rounded half up, lower end), and whether
    it had to be derived that way.  Out of range: any end outside 0..10."""
    ends = [_number(m["a"])] + ([_number(m["b"])] if m["b"] else [])
    if not all(0 <= n <= 10 for n in ends):
        return int(_OUT_OF_RANGE), False
    low = min(ends)
    rounded = low.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(rounded), len(ends) > 1 or "." in m["a"]


def _cue_start(text: str, pos: int) -> int:
    """Move `pos` back over the cue words right before it ("I'd say a" 6)."""
    for w in reversed(list(_WORD_RE.finditer(text, max(0, pos - 80), pos))):
        if w.group().lower().replace("'", "") not in _ALL_CUES or text[w.end():pos].strip():
            break
        pos = w.start()
    return pos


# Words after a number that show it counts things rather than scores a mood.
_COUNTED = frozenset(
    "more less pills pill tablets tablet meds times glasses cups drinks people kids of out x st nd rd th "
    "am pm oclock ish a questions question things thing quick small".split()
)


def _scoreish(text: str, m: re.Match[str], expecting: bool, scale: bool) -> bool:
    """Is this number a score, judged by the words around it?"""
    before = text[max(0, m.start() - 80): m.start()]
    prev = _words_of(before)[-2:]
    following = _NEXT_WORD_RE.match(text, m.end())
    next_word = _words_of(following.group())[0] if following else None
    if prev and prev[-1] in _BLOCKERS:
        return False
    if scale:
        return next_word not in {"at", "am", "pm"}
    leads = not _WORD_RE.search(text, 0, m.start())
    if next_word is not None and next_word not in _FOLLOWERS:
        # Answering a check-in, a number that opens the text is the score, whatever follows
        # ("6 blurry vision last night"), unless it counts something ("10 min late", "2 pills").
        if not (expecting and leads and next_word not in _UNITS and next_word not in _COUNTED):
            return False
    if leads or _STRONG_CUES & set(prev):
        return True
    trailing = not _WORD_RE.search(text, m.end()) and before.rstrip()[-1:] in tuple(_SEPARATORS)
    return expecting and (bool(prev) and prev[-1] in _WEAK_CUES or trailing)


def _candidates(text: str, expecting: bool) -> list[_Score]:
    scale = [m for m in _SCALE_RE.finditer(text) if _scoreish(text, m, expecting, True)]
    matches = scale or [m for m in _TOKEN_RE.finditer(text) if _scoreish(text, m, expecting, False)]
    found = []
    for m in matches:
        value, derived = _value(m)
        alone = not (scale or _WORD_RE.search(text, 0, m.start()) or _WORD_RE.search(text, m.end()))
        found.append(_Score(value, _cue_start(text, m.start()), m.end(), derived, alone))
    return found


def _find_score(text: str, expecting: bool) -> _Score | None:
    """The mood score in `text`, or None.

    - "N/10", "N / 10", "N out of 10" (N a digit or a number word) win over any other number.
    - Otherwise a number counts when it is alone, leads the message, or follows a cue
      ("a", "mood", "score", "say", "solid"...), and is followed by the end, punctuation
      or a small set of words ("but", "and", "today", "feeling"...).  With `expecting`
      also after weak cues ("about", "maybe", "is"...) or last after punctuation
      ("feeling ok, 6").  Never after "at", "by", "on", "took"..., never times, dates,
      ordinals or units ("10:30", "3pm", "3/4", "12th", "10 minutes").
    - Decimals round half up ("6.5" -> 7); ranges take the lower, worse end ("5-6" -> 5).
    - Two different candidate values, or a value outside 0..10, means no score.
    """
    found = _candidates(text, expecting)
    if len({s.value for s in found}) != 1 or not 0 <= found[0].value <= 10:
        return None
    return found[0]


def _score_note(text: str, score: _Score) -> str:
    """What the patient said besides the score; the whole text when rounded or a range."""
    if score.derived:
        return " ".join(text.split())
    rest = " ".join((text[: score.start] + " " + text[score.end:]).split())
    rest = re.sub(r"\s*[,;:]\s*(?=[.!?])", "", rest)  # "Pretty good, . Bit of" -> "Pretty good. Bit of"
    rest = re.sub(r"\s+([,.;:!?])", r"\1", rest)
    if all(w in _NOTE_FILLER for w in _words_of(rest)):
        return ""
    while True:
        rest = rest.lstrip(_SEPARATORS + " ").rstrip(",;:-–— ")
        if rest.endswith(")") and "(" not in rest:
            rest = rest[:-1].rstrip()
        head, _, tail = rest.partition(" ")
        if head.lower().strip(_SEPARATORS) not in _NOTE_LEADERS:
            return rest
        rest = tail


# ---------------------------------------------------------------- reading

def read_reply(text: str, *, expecting_score: bool = False) -> Reading:
    """Classify one inbound text; see the module docstring for the kinds and rules.

    `expecting_score`: the last message sent to this patient was a mood check-in, so a
    bare 1 or 3 is a score rather than confirm/reschedule, and looser score phrasing counts.
    """
    crisis = detect_crisis(text)
    words = _plain_words(text)
    if not words:
        return Reading(_symbols_kind(text), crisis_terms=crisis)
    keyword = _keyword_kind(words, crisis)
    if keyword:
        kind, word = keyword
        with_words = kind == "stop" and bool(crisis)  # rule (c): keep what they wrote
        return Reading(kind, note=text.strip() if with_words else "", crisis_terms=crisis, keyword=word)
    joined = " ".join(words)
    if _CONFIRM_RE.fullmatch(joined):
        return Reading("confirm", crisis_terms=crisis)
    if _RESCHEDULE_RE.fullmatch(joined):
        return Reading("reschedule", crisis_terms=crisis)
    if _SOFT_CONFIRM_RE.fullmatch(joined):
        return Reading("soft_confirm", crisis_terms=crisis)
    if _is_ack(words) and not (expecting_score and _digits(text)):
        return Reading("ack", crisis_terms=crisis)
    return _score_or_rest(text, words, expecting_score, crisis)


def _digits(text: str) -> bool:
    return any(c.isdigit() for c in text)


def _score_or_rest(
    text: str, words: list[str], expecting: bool, crisis: tuple[str, ...]
) -> Reading:
    clean = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)
    clean = "".join(c for c in clean if unicodedata.category(c) != "Cf")
    score = _find_score(clean, expecting)
    if score and score.alone and not score.derived and not expecting and score.value in (1, 3):
        return Reading("confirm" if score.value == 1 else "reschedule", crisis_terms=crisis)
    if score:
        return Reading("score", score.value, _score_note(clean, score), crisis)
    if _asks_reschedule(words):
        return Reading("reschedule", note=text.strip(), crisis_terms=crisis)
    if expecting and _tries_a_score(words):
        return Reading("unclear_score", note=text.strip(), crisis_terms=crisis)
    return Reading("free_text", note=text.strip(), crisis_terms=crisis)


# Words of a short text that is trying to give a score and did not quite ("sevn", "idk 5ish?").
_UNSURE = frozenset("idk dunno unsure sure not maybe hmm hmmm um umm no se nose ish or o".split())


def _near_number(word: str) -> bool:
    """A misspelt number word: one letter changed, missing, added or swapped ("sevn", "fvie")."""
    if len(word) < 3 or word in _NUMBER_WORDS:
        return False
    for number in _NUMBER_WORDS:
        if len(number) < 4 or abs(len(number) - len(word)) > 1:
            continue
        if _one_edit(word, number):
            return True
    return False


def _one_edit(a: str, b: str) -> bool:
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def _tries_a_score(words: list[str]) -> bool:
    """A short answer to a check-in with a number in it, or a number word misspelt."""
    if len(words) > 3:
        return False
    numeric = [w for w in words if any(c.isdigit() for c in w) or _near_number(w)]
    return bool(numeric) and all(w in _UNSURE or w in numeric for w in words)
