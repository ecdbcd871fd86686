"""The words a patient's reply is read by (reminders.inbound.parsing): one table per language of
keywords (STOP, START, HELP), confirmations, reschedule requests and thanks, and the rules that
find them in a text's folded words.

Pure: standard library only, no I/O."""
from __future__ import annotations

import re

from reminders.triage.engine import squash as _squash

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
        # a whole text asking who is writing: answered with the HELP text (who we are, how to stop)
        "who": (r"who (?:is|s) (?:this|that|texting(?: me)?|this number)", r"whos (?:this|that|texting(?: me)?)",
                r"who (?:are|r) (?:you|u)(?: guys)?", r"what (?:is|s) this(?: number)?", r"whats this(?: number)?",
                r"who (?:is|s) (?:this|it) from", r"do i know you"),
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
        "who": (r"quien (?:es|eres|son|habla|me escribe)(?: (?:este numero|esto|usted|ustedes))?",
                r"de (?:donde|quien|que) es (?:este numero|esto)", r"que es (?:esto|este numero)",
                r"con quien hablo"),
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


def keyword_kind(words: list[str], crisis: tuple[str, ...]) -> tuple[str, str] | None:
    """("stop"|"start"|"help", the keyword) or None, by the rules in reminders.inbound.parsing."""
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
    "contact reminders reminder spam spamming bothering number wrong person persona equivocado equivocada "
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
# One confirmation or several in a row: "confirmo, ahí estaré", "confirmed, I'll be there".
_CONFIRM = rf"(?:{_any_of('confirm')}){_WHAT}"
_WHO_RE = re.compile(rf"{_PRE}(?:hi |hello |hey |hola |sorry |perdon |disculpe )*(?:{_any_of('who')}){_POST}")


def asks_who_we_are(words: list[str]) -> bool:
    """ "Who is this?", "¿quién es?": the whole text asks who is writing (the HELP text answers it)."""
    return _WHO_RE.fullmatch(" ".join(words)) is not None


CONFIRM_RE = re.compile(rf"{_PRE}{_CONFIRM}(?: {_CONFIRM})*{_POST}")
SOFT_CONFIRM_RE = re.compile(rf"{_PRE}(?:{_any_of('soft_confirm')}){_POST}")
RESCHEDULE_RE = re.compile(rf"{_PRE}(?:{_any_of('reschedule')}){_WHAT}{_POST}")
_VISIT_CHANGE_RE = re.compile(_any_of("visit_change"))
_NEGATIONS = set("no not dont never nevermind nope didnt doesnt wont without".split())
_ACK_HEADS = _all("ack_heads")
_ACK_WORDS = _all("ack_words")
# Emoji that say "yes" to a reminder, and emoji that only say thanks or hello.
_YES_EMOJI = frozenset("👍👌✅☑✔🆗")
_ACK_EMOJI = frozenset("😊🙂😀😃😄😁☺🙏❤♥💕💖💗💙💚💜🧡💛🤍🥰😍🤗✨🌞🌸🌷💐👋🙌👏💪😌😇😎🤩🥳⭐🌟")
_EMOJI_MODIFIERS = frozenset("\ufe0f\ufe0e\u200d🏻🏼🏽🏾🏿")


def asks_reschedule(words: list[str]) -> bool:
    for i, word in enumerate(words):
        if word.startswith("resched") and not _NEGATIONS & set(words[max(0, i - 3):i]):
            return True
    joined = " ".join(words)
    for m in _VISIT_CHANGE_RE.finditer(joined):
        if not _NEGATIONS & set(joined[:m.start()].split()[-3:]):
            return True
    return False


def symbols_kind(text: str) -> str:
    """A text with no words: "soft_confirm" (a thumbs-up), "ack" (a smile, a heart), or "empty"."""
    marks = [c for c in text if not c.isspace() and c not in _EMOJI_MODIFIERS and c not in ".!,~"]
    if not marks:
        return "empty"
    if any(c in _YES_EMOJI for c in marks) and all(c in _YES_EMOJI or c in _ACK_EMOJI for c in marks):
        return "soft_confirm"
    if all(c in _ACK_EMOJI for c in marks):
        return "ack"
    return "empty"


def is_ack(words: list[str]) -> bool:
    return bool(words) and len(words) <= 6 and set(words) <= _ACK_WORDS and bool(set(words) & _ACK_HEADS)
