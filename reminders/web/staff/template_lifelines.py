"""The lifelines a crisis or emergency answer must give (988, 911, Poison Control), never
overridden: a candidate that leaves one out for any sample patient is refused."""
from __future__ import annotations

import re
from dataclasses import dataclass

from reminders.rendering import TemplateProblem, TemplateStore, render
from reminders.web.staff.template_samples import base_name


@dataclass(frozen=True)
class MissingLifeline(TemplateProblem):
    """A crisis or emergency answer without a number it must give: never saved."""


POISON_CONTROL_NUMBER = "1-800-222-1222"


@dataclass(frozen=True)
class Lifeline:
    what: str  # "the crisis line"
    variable: str | None  # what the default writes for it
    setting: str | None  # the clinic's setting that holds the number
    only_for_overdose: bool = False  # given when the text is about an overdose or a poisoning

    def number(self, settings) -> str:
        return getattr(settings, self.setting) if self.setting else POISON_CONTROL_NUMBER


CRISIS_LINE = Lifeline("the crisis line", "clinic.crisis_line", "crisis_line")
EMERGENCY_NUMBER = Lifeline("the emergency number", "clinic.emergency_number", "emergency_number")
POISON_CONTROL = Lifeline("Poison Control", None, None, only_for_overdose=True)
SUICIDE_RISK, EMERGENCY = "suicide-risk answer", "medical emergency answer"
# The answers a patient in danger gets, what each must give, in every language it is written in.
# (The first answer to a crisis or an emergency, and the one after a questionnaire's self-harm
# item, give both numbers: reminders.inbound sends its built-in text when one is missing.)
LIFELINES: dict[str, tuple[str, tuple[Lifeline, ...]]] = {
    "reply_crisis": (SUICIDE_RISK, (CRISIS_LINE, EMERGENCY_NUMBER)),
    "reply_questionnaire_crisis": (SUICIDE_RISK, (CRISIS_LINE, EMERGENCY_NUMBER)),
    "reply_follow_up_crisis": (SUICIDE_RISK, (CRISIS_LINE,)),
    "reply_possible_risk": (SUICIDE_RISK, (CRISIS_LINE,)),
    "reply_emergency": (EMERGENCY, (EMERGENCY_NUMBER, CRISIS_LINE, POISON_CONTROL)),
    "reply_follow_up_emergency": (EMERGENCY, (EMERGENCY_NUMBER, POISON_CONTROL)),
}


def lifelines_of(name: str) -> tuple[str, tuple[Lifeline, ...]] | None:
    return LIFELINES.get(base_name(name))


def missing_lifeline(candidate: TemplateStore, settings, name: str,
                     labelled: list[tuple[str, dict]]) -> MissingLifeline | None:
    """The first number a crisis or emergency answer leaves out, for any sample patient, with or
    without an overdose."""
    needed = lifelines_of(name)
    if needed is None:
        return None
    kind, lifelines = needed
    cases = list(labelled)
    base = labelled[0][1]
    if isinstance(base.get("answer"), dict):
        cases.append(("a text that is not about an overdose", {**base, "answer": {**base["answer"],
                                                                                  "poison_control": False}}))
    for label, context in cases:
        text = render(candidate, name, context)
        overdose = bool((context.get("answer") or {}).get("poison_control"))
        for lifeline in lifelines:
            if lifeline.only_for_overdose and not overdose:
                continue
            if lifeline.number(settings) not in text:
                return MissingLifeline(name, None, _lifeline_reason(candidate, settings, name, kind, lifeline, label))
    return None


def _lifeline_reason(store: TemplateStore, settings, name: str, kind: str, lifeline: Lifeline, label: str) -> str:
    number = lifeline.number(settings)
    told = f"This {kind} must give {lifeline.what}, {number}, and it is missing"
    told += f" ({label.replace('for ', '', 1)})." if label else "."
    sentence = default_sentence(store.default_source(name) or "", lifeline.variable or number)
    if sentence:
        told += f" The default says: “{sentence}” Put that sentence back, in your words if you like."
    elif lifeline.variable:
        told += f" Write `{{{{ {lifeline.variable} }}}}` where the patient should read it."
    return told


def default_sentence(source: str, needle: str) -> str | None:
    """The sentence of a default template that carries a number (its tags taken out)."""
    words = re.sub(r"{%.*?%}", " ", source)
    for sentence in re.split(r"(?<=[.!?])\s+", " ".join(words.split())):
        if needle in sentence:
            return sentence.strip()
    return None
