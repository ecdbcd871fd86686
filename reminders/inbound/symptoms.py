"""Side effects, blood pressures and questions in a patient's text (English and Spanish). Pure.

What a nurse wants to see the same day after an infusion (see CLINICAL.md): the side effects
clinics name, a home blood pressure, and any question. `read_flags` returns what it found;
the caller decides the rank (reminders.inbound.replies). It over-reads on purpose: a flag
costs a nurse a look, a missed one costs a patient.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# label -> patterns searched in the folded text (lower case, no accents, "'" removed).
SIDE_EFFECTS: dict[str, tuple[str, ...]] = {
    "vomiting": (r"(?<!ganas de )\bvomit", r"\bthrow(?:ing|n)? ?up\b", r"\bthrew up\b", r"\bpuk(?:e|ed|ing)\b",
                 r"\bbarf",
                 r"\bbeen sick\b", r"\bvomit(?:o|e|ando|ado)", r"\bdevolv", r"\bbasca"),
    "nausea": (r"\bnause", r"\bnaus(?:ea|ia|eous|ous|heous)", r"\bqueas", r"\bsick to (?:my|the) stomach\b",
               r"\b(?:feel|feeling|felt|feels|still|so|really|very|bit|little|kinda|kind of) (?:\w+ )?sick\b",
               r"\bsick (?:after|afterwards|since|all day|all night|in the car|on the way)\b",
               r"\bupset stomach\b", r"\bstomach\b", r"\bganas de vomitar\b", r"\basco\b", r"\bmal del estomago\b",
               r"\bestomago\b"),
    "dizziness": (r"\bdiz+y", r"\bdiz+i", r"\blight ?headed", r"\bvertigo\b", r"\bwobbly\b", r"\bunsteady\b",
                  r"\bspinning\b", r"\bmare(?:o|ad[oa]|arme)\b", r"\bvahido"),
    "headache": (r"\bhead ?ache", r"\bhead ?hurt", r"\bhead is (?:killing|pounding|throbbing)", r"\bmigraine",
                 r"\bdolor de cabeza\b", r"\bduele(?: \w+){0,2} (?:la )?cabeza\b", r"\bjaqueca", r"\bmigran"),
    "dissociation": (r"\bfloat(?:y|ing)\b", r"\bdissociat", r"\bdetached\b", r"\bout of (?:my )?body\b",
                     r"\bspaced? ?out\b", r"\bspacey\b", r"\bspacy\b", r"\bfoggy\b", r"\bfog\b", r"\bnot real\b",
                     r"\bunreal\b", r"\bdisconnected\b", r"\bweird\b", r"\bstrange\b", r"\bhigh still\b",
                     r"\bstill high\b", r"\bflot(?:ando|ar|e)\b", r"\bdesconectad", r"\bfuera de (?:mi|su) cuerpo\b",
                     r"\braro\b", r"\brara\b", r"\baturdid"),
    "visual changes": (r"\bblurr", r"\bvision\b", r"\bseeing (?:things|double|colors|colours|spots|stars)\b",
                       r"\bdouble vision\b", r"\bvisual", r"\beyes? (?:feel|are|is) (?:weird|funny|off)\b",
                       r"\bvista borrosa\b", r"\bveo (?:borroso|doble|cosas|manchas)\b", r"\bborros"),
    "blood pressure": (r"\bblood pressure\b", r"\bbp\b", r"\bpresion\b", r"\btension alta\b",
                       r"\bheart (?:racing|pounding|rate)\b", r"\bpalpitat", r"\bpulse\b", r"\btaquicard",
                       r"\bcorazon (?:acelerado|a mil)\b"),
    "nightmares": (r"\bnightmare", r"\bflash ?backs?\b", r"\bbad dreams?\b", r"\bvivid dreams?\b",
                   r"\bpesadilla", r"\bmalos suenos\b"),
    "sleep": (r"\bcant sleep\b", r"\bcan not sleep\b", r"\bcouldnt sleep\b", r"\bno sleep\b", r"\binsomnia\b",
              r"\bnot sleeping\b", r"\bhavent slept\b", r"\bdidnt sleep\b", r"\bno (?:puedo|pude) dormir\b",
              r"\binsomnio\b", r"\bsin dormir\b"),
    "racing thoughts": (r"\bracing thoughts\b", r"\bmind (?:is )?racing\b", r"\bmanic\b", r"\bmania\b",
                        r"\bpensamientos acelerados\b"),
    "confusion": (r"\bconfus", r"\bdisoriented\b", r"\bcant think\b", r"\bcan not think\b", r"\bmemory\b",
                  r"\bconfundid", r"\bdesorientad"),
    "anxiety": (r"\banxious\b", r"\banxiety\b", r"\bpanic", r"\bparanoi", r"\bansiedad\b", r"\bansios",
                r"\bpanico\b", r"\bnervios"),
    "chest or breathing": (r"\bchest\b", r"\bbreath", r"\bpecho\b", r"\brespirar\b", r"\bfaint", r"\bpassed out\b",
                           r"\bdesmay"),
    "bladder": (r"\bbladder\b", r"\bpee\b", r"\bpeeing\b", r"\burinat", r"\bburns? when i\b", r"\bblood in\b",
                r"\borinar\b", r"\bvejiga\b"),
    "tiredness": (r"\bexhausted\b", r"\bwiped out\b", r"\bso tired\b", r"\bagotad"),
    "side effects": (r"\bside ?effects?\b", r"\bsymptoms?\b", r"\befectos? secundarios?\b", r"\bsintomas?\b"),
}
# Words that undo a side effect just before it ("no headache", "sin náuseas", "didn't have any nausea").
_NEGATION = re.compile(
    r"(?:\bno\b|\bnot\b|\bnone\b|\bnor\b|\bwithout\b|\bzero\b|\bnever\b|\bsin\b|\bni\b|\bningun[ao]?\b|\bnada de\b|"
    r"\bdidnt (?:have|get|feel)\b|\bdid not (?:have|get|feel)\b|\bhavent had\b|\bhave not had\b|\bno more\b|"
    r"\bwasnt\b|\bwas not\b|\bisnt\b|\bgone\b|\bfree of\b)(?:\W+\w+){0,2}\W*$"
)
# Words that undo a negation in the same place ("can't stop throwing up", "no paro de vomitar").
_STILL = re.compile(r"\b(?:stop|stopping|paro|parar|dejo|better)\b")
# Text after the match that undoes it: "headache is gone", "nausea went away".
_GONE_AFTER = re.compile(r"^\W*(?:\w+\W+){0,2}(?:is|are|was|were|has|have|went|se)?\W*(?:gone|away|fue|quito|"
                         r"paso|better|fine)\b")

_BP_RE = re.compile(r"(?<![\d/.:,])(\d{2,3})\s*(?:/|over|sobre|x|-|\\)\s*(\d{2,3})(?![\d/.:%])")
_QUESTION_WORDS = re.compile(
    r"(?:^|[.!,;]\s*)(?:can i|can you|can my|can we|could i|could you|could my|may i|should i|should my|is it|is that|"
    r"is this|is my|are you|do i|do you|do we|"
    r"does|when|what|how|why|where|who|will i|will it|am i|i was wondering|wondering if|question|"
    r"puedo|puede|debo|deberia|es normal|tengo que|una pregunta|pregunta)\b"
)
_NOT_QUESTIONS = re.compile(r"\W*(?:how|what) (?:a|an) \w+|\W*(?:how|que|como) (?:are|estas?|esta) (?:you|u|usted)?\W*")


@dataclass(frozen=True)
class Flags:
    side_effects: tuple[str, ...] = ()
    pressures: tuple[tuple[int, int], ...] = ()  # (systolic, diastolic) readings found
    question: bool = False

    def high_pressures(self, systolic: int, diastolic: int) -> tuple[tuple[int, int], ...]:
        return tuple(p for p in self.pressures if p[0] >= systolic or p[1] >= diastolic)

    def any(self) -> bool:
        return bool(self.side_effects or self.pressures or self.question)


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", str(text)).casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.replace("’", "'").replace("'", "")


def blood_pressures(text: str) -> tuple[tuple[int, int], ...]:
    """Readings that look like a blood pressure ("160/100", "150 over 95"); never "7/10"."""
    found = []
    for m in _BP_RE.finditer(_fold(text)):
        systolic, diastolic = int(m[1]), int(m[2])
        if 70 <= systolic <= 300 and 40 <= diastolic <= 200 and systolic > diastolic:
            found.append((systolic, diastolic))
    return tuple(found)


def side_effects(text: str) -> tuple[str, ...]:
    folded = _fold(text)
    found = []
    for label, patterns in SIDE_EFFECTS.items():
        for pattern in patterns:
            if any(not _negated(folded, m) for m in re.finditer(pattern, folded)):
                found.append(label)
                break
    if "dizziness" in found and "dissociation" in found and not re.search(r"\bfloat|dissociat|detached", folded):
        found.remove("dissociation")  # "feeling weird and dizzy" is the dizziness
    if "side effects" in found and len(found) > 1:
        found.remove("side effects")
    return tuple(found)


def _negated(folded: str, match: re.Match[str]) -> bool:
    before = folded[max(0, match.start() - 40):match.start()]
    negation = _NEGATION.search(before)
    if negation and not _STILL.search(before[negation.start():]):
        return True
    return bool(_GONE_AFTER.search(folded[match.end():match.end() + 30]))


def asks_question(text: str) -> bool:
    """A question mark in a text of a few words, or a sentence that starts like a question."""
    folded = _fold(text).strip()
    if ("?" in folded or "¿" in folded) and len(re.findall(r"[^\W\d_]+", folded)) >= 3:
        return True
    return bool(_QUESTION_WORDS.search(folded)) and not _NOT_QUESTIONS.match(folded)


_GOOD_NEWS = re.compile(
    r"\b(?:great|good|amazing|wonderful|fantastic|awesome|better|best|fine|happy|happier|lighter|calm|calmer|"
    r"hopeful|excellent|incredible|bien|mejor|genial|excelente|feliz|tranquil[oa])\b")
_NOT_GOOD = re.compile(r"\b(?:not|no|isnt|wasnt|never|nothing|hardly|barely|but|though|except|ni|pero|nada)\b")


def sounds_well(text: str) -> bool:
    """Good news in words ("Feeling great! Best day in years"), with no "not", "but" or red flag."""
    folded = _fold(text)
    return bool(_GOOD_NEWS.search(folded)) and not _NOT_GOOD.search(folded) and not read_flags(text).any()


def read_flags(text: str) -> Flags:
    """Everything in `text` a nurse should see today. Never raises on odd input."""
    try:
        return Flags(side_effects(text), blood_pressures(text), asks_question(text))
    except Exception:  # noqa: BLE001 - pure helper on untrusted text: flag it rather than fail
        return Flags(question=True)
