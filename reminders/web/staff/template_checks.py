"""Checks a staff template must pass before it is saved, and the preview for a sample patient.

What is refused, and said in plain words naming the line: a name a message is not given
("`patient.nickname` is not something this message can use. Did you mean `patient.first_name`?"),
a tag left open, a render that fails for some sample patient; a crisis or emergency answer
without its lifeline (LIFELINES: 988, 911, Poison Control; never overridden); a text over its
segment budget (SMS_SEGMENTS a text, each part between break lines on its own), unless an admin
sends it anyway as the very number of segments it costs (`assess`).

The preview renders the candidate the way a send does (reminders.rendering.render and
texts_as_sent, the context the message is given when sent), so what it shows is what goes.

reminders.rendering.validate_all renders the candidate in the sandbox with strict undefined
names. A template that works for one sample can fail for the next patient (`last_name[0]` for a
patient with no last name, a branch on the name that divides by zero), so the candidate is
rendered for every sample patient (blank optional fields, long and non-Latin names) with every
kind of visit and series position, and its names are checked statically. Every render has the
sandbox's time and size budget, and the whole check has CHECK_TIME_LIMIT.

Checks and previews are CPU work an admin can start from a browser: they run on a small pool of
their own (PREVIEW_SLOTS at a time), never queueing behind each other on the threads that answer
Twilio's webhooks; over the limit the caller is told "busy" at once (PreviewBusy).
"""
from __future__ import annotations

import difflib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace

from jinja2 import TemplateSyntaxError, meta, nodes

from reminders.channels.segments import sms_length
from reminders.planning.rules import RuleSettings, default_rules
from reminders.rendering import (
    PART_BREAK, SMS_SEGMENTS, SUFFIXES, TemplateProblem, TemplateStore, environment, render, render_problem,
    sample_context, template_language, texts_as_sent, validate_all, without_break,
)
from reminders.sending import SPLIT_KINDS

MAX_SOURCE = 20_000
CHECK_TIME_LIMIT = 2.0  # seconds for all the sample renders of one check
PREVIEW_SLOTS = 2  # checks and previews running at once, in the whole process
PREVIEW_WAIT = 5.0  # seconds a request waits for its check before answering "busy"


def part_of(name: str) -> str:
    """sms | subject | text | html, from the file name."""
    for part, suffix in SUFFIXES.items():
        if name.endswith(suffix):
            return part
    return "text"


# (what the sample is, as told to the admin; the patient fields)
SAMPLE_PATIENTS = (
    ("Alex Rivera", {"first_name": "Alex", "last_name": "Rivera"}),
    ("a patient with no last name", {"first_name": "Sam", "last_name": ""}),
    ("a patient with a one-letter first name", {"first_name": "J", "last_name": "Ng"}),
    ("a patient with a long name", {"first_name": "Maria Fernanda Alejandra Guadalupe",
                                    "last_name": "de los Santos Villanueva-Rodriguez y Castellanos"}),
    ("a patient with a Cyrillic name", {"first_name": "Владимир", "last_name": "Иванов"}),
    ("a patient with a Chinese name", {"first_name": "美玲", "last_name": "王"}),
    ("a patient with an Arabic name", {"first_name": "محمد", "last_name": "العلي"}),
)
# (position, series length): every position of the longest series, and the end of the usual one
SERIES_POSITIONS = tuple((number, 8) for number in range(1, 9)) + ((6, 6),)


def visit_variants(settings, language: str = "en") -> list[tuple[str, dict | None]]:
    """Every kind of visit and position in a series, a visit without a location, and no visit."""
    base = sample_context(settings, language)["visit"]
    variants = []
    for number, series in SERIES_POSITIONS:
        variants.append((f"induction infusion {number} of {series}",
                         {**base, "kind": "induction", "number": number, "series_length": series,
                          "is_first": number == 1}))
    for number in (1, 12):
        variants.append((f"maintenance visit {number}", {**base, "kind": "maintenance", "number": number,
                                                          "series_length": 6, "is_first": False}))
    variants.append(("a visit with no location", {**base, "location": ""}))
    variants.append(("a visit at midnight lasting 40 minutes", {**base, "time": "12:00 AM", "duration_minutes": 40}))
    variants.append(("no visit", None))
    return variants


def allowed_names(store: TemplateStore, name: str) -> set[str]:
    """What a message can use: what every message is given (the patient, the clinic, the
    preparation settings, the visit when there is one), and what its default uses beyond that
    (an answer's words, a check-in's link, the next visit after a missed one). Anything else would
    render in the preview and fail when sent."""
    names = set(EVERY_MESSAGE)
    if base_name(name).startswith("reply_"):
        names.add("answer")  # every answer to a patient's text is given `answer` (reminders.inbound.replies)
    default = store.default_source(name)
    if default is not None:
        try:
            names |= meta.find_undeclared_variables(environment(store).parse(default))
        except TemplateSyntaxError:
            pass
    return names


EVERY_MESSAGE = ("patient", "clinic", "prep", "visit")


def template_context(store: TemplateStore, settings, name: str) -> dict:
    """The sample patient's context as this message gets it when sent: only what it is given."""
    allowed = allowed_names(store, name)
    return {key: value for key, value in sample_context(settings, template_language(name)).items() if key in allowed}


def labelled_contexts(store: TemplateStore, settings, name: str) -> list[tuple[str, dict]]:
    """The contexts a candidate must render in: each one its default renders in.

    Some messages go without a visit (the welcome text, most replies to a patient's text). When
    the default copes with `visit` being None, an edited version must cope too.
    """
    base = template_context(store, settings, name)
    default = store.default_source(name)
    visits = []
    compiled = None
    if default is not None:
        try:
            compiled = environment(store).from_string(default)
        except TemplateSyntaxError:
            compiled = None
    for label, visit in visit_variants(settings, template_language(name)):
        if compiled is None:
            if visit is not None:
                visits.append((label, visit))
        elif render_problem(compiled, name, {**base, "visit": visit}) is None:
            visits.append((label, visit))
    if not visits:
        visits = [("Alex Rivera's visit", base["visit"])]
    # The preview's own sample first, unlabelled: a problem there needs no "for whom".
    first = [("", base)] if compiled is None or render_problem(compiled, name, base) is None else []
    return first + [(f"{who}, {what}", {**base, "patient": {**base["patient"], **patient}, "visit": visit})
                    for who, patient in SAMPLE_PATIENTS for what, visit in visits]


class CandidateStore(TemplateStore):
    """The clinic's store, with one template replaced by the text being edited."""

    def __init__(self, store: TemplateStore, name: str, source: str):
        super().__init__(store.templates_dir, store.session)
        self._overrides = store.overrides()  # read once, so the checks need no database
        self.candidate_name, self.candidate_source = name, source
        self.fall_back = False  # a preview shows what the candidate does, never the default in its place

    def source(self, name: str) -> str | None:
        if name == self.candidate_name:
            return self.candidate_source
        return super().source(name)


# ---------------------------------------------------------------- refusals an admin can act on

@dataclass(frozen=True)
class MissingLifeline(TemplateProblem):
    """A crisis or emergency answer without a number it must give: never saved."""


@dataclass(frozen=True)
class OverBudget(TemplateProblem):
    """A text over its segment budget: saved only when an admin sends it anyway as `segments`."""
    segments: int = 0


def check(store: TemplateStore, settings, name: str, source: str,
          send_anyway: int | None = None) -> TemplateProblem | None:
    """Why the candidate cannot be saved, in plain words naming the line; None when it can.
    `send_anyway`: the segments an admin agreed a text over its budget may cost."""
    return assess(store, settings, name, source, send_anyway)[0]


def assess(store: TemplateStore, settings, name: str, source: str,
           send_anyway: int | None = None) -> tuple[TemplateProblem | None, OverBudget | None]:
    """(why it cannot be saved, or None; the budget an admin's `send_anyway` let it pass, or None).
    A lifeline is never overridden; the budget only for the very number of segments agreed to."""
    labelled = labelled_contexts(store, settings, name)
    problem = _errors(store, settings, name, source, labelled)
    if problem is not None:
        return problem, None
    candidate = CandidateStore(store, name, source)
    problem = missing_lifeline(candidate, settings, name, labelled)
    if problem is not None:
        return problem, None
    over = over_budget(candidate, settings, name, labelled[0][1])
    if over is not None and send_anyway != over.segments:
        return over, None
    return None, over


def _errors(store: TemplateStore, settings, name: str, source: str,
            labelled: list[tuple[str, dict]]) -> TemplateProblem | None:
    """What stops the candidate from rendering for some patient: its wording, names, limits."""
    if not source.strip():
        return TemplateProblem(name, None, "The template is empty.")
    if len(source) > MAX_SOURCE:
        return TemplateProblem(name, None, f"The template is longer than {MAX_SOURCE} characters.")
    deadline = time.monotonic() + CHECK_TIME_LIMIT
    candidate = CandidateStore(store, name, source)
    contexts = [context for _label, context in labelled]
    with_visit = [context for context in contexts if context["visit"] is not None]
    context = (with_visit or contexts)[0]
    # The names first: "`patient.nickname` is not something a message can use" says more than
    # the error a render of it gives.
    problem = _unknown_names(candidate, name, source, context)
    if problem is None:
        problem = validate_all(candidate, name, source, labelled, deadline)
    return plain_words(problem, source, context) if problem is not None else None


def _unknown_names(store: TemplateStore, name: str, source: str, context: dict) -> TemplateProblem | None:
    env = environment(store)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(name, exc.lineno, exc.message or "syntax error")
    known = set(context) | set(env.globals)
    for variable in sorted(meta.find_undeclared_variables(tree) - known):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == variable), None)
        return TemplateProblem(name, line, not_usable(variable, context))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        path = _path(node)
        if path is None:
            continue
        if any(str(part).startswith("_") for part in path[1:]):
            return TemplateProblem(name, node.lineno, "names starting with an underscore are not allowed")
        value = context.get(path[0], _MISSING)
        if value is _MISSING or not isinstance(value, dict):
            continue
        for depth, part in enumerate(path[1:], start=1):
            if not isinstance(value, dict):
                break
            if part not in value:
                return TemplateProblem(name, node.lineno, not_usable(".".join(map(str, path[:depth + 1])), context))
            value = value[part]
    return None


_MISSING = object()


def _path(node) -> list | None:
    """['visit', 'date'] for visit.date or visit['date']; None for anything else."""
    parts = []
    while isinstance(node, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            parts.append(node.arg.value)
        else:
            return None
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    return [node.name, *reversed(parts)]


# ---------------------------------------------------------------- plain words

# Words admins reach for, and the variable that holds them.
SYNONYMS = {
    "nickname": "first_name", "name": "first_name", "firstname": "first_name", "first": "first_name",
    "given_name": "first_name", "surname": "last_name", "lastname": "last_name", "family_name": "last_name",
    "day": "date", "when": "time", "hour": "time", "place": "location", "where": "location", "address": "address",
    "clinic_name": "name", "telephone": "phone", "phone_number": "phone", "hotline": "crisis_line",
    "crisis": "crisis_line", "emergency": "emergency_number", "fast_until": "eat_until", "stop_eating": "eat_until",
}


def variable_paths(context: dict, prefix: str = "") -> list[str]:
    """Every name a message can print, dotted: patient.first_name, visit.eat_until, prep.fasting, ..."""
    paths = []
    for key, value in context.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            paths.extend(variable_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def suggestion(path: str, context: dict) -> str | None:
    """The variable an admin most likely meant by `path`."""
    known = variable_paths(context)
    *group, last = path.split(".")
    siblings = [p for p in known if p.rsplit(".", 1)[0] == ".".join(group)] if group else []
    meant = SYNONYMS.get(last.lower())
    if meant and ".".join([*group, meant]) in known:
        return ".".join([*group, meant])
    if meant and not group:
        return next((p for p in known if p.endswith(f".{meant}")), None)
    close = difflib.get_close_matches(path, siblings or known, n=1, cutoff=0.6)
    if not close and not group:  # "first_name" on its own: patient.first_name
        close = [p for p in known if p.endswith(f".{last}")][:1]
    return close[0] if close else None


def not_usable(path: str, context: dict) -> str:
    meant = suggestion(path, context)
    told = f"`{path}` is not something this message can use."
    return f"{told} Did you mean `{meant}`?" if meant else told


_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_NO_ELEMENT = re.compile(r"^'?\w+ object'? has no element ")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined")
_NEVER_CLOSED = re.compile(r"innermost block that needs to be closed is '(\w+)'")
_UNKNOWN_TAG = re.compile(r"Encountered unknown tag '(\w+)'")
_KINDS_OF_FAILURE = {
    "ZeroDivisionError": "this divides by zero",
    "IndexError": "this picks a letter or item that is not there",
    "KeyError": "this picks something that is not there",
    "TypeError": "this mixes things that do not go together (a number and a word?)",
    "ValueError": "this turns something into a number or date that is not one",
    "UnicodeEncodeError": "this cannot handle a name written in another alphabet",
}


def plain_words(problem: TemplateProblem, source: str, context: dict) -> TemplateProblem:
    """The problem as an admin reads it: no Jinja or Python words where plain ones will do."""
    reason, line = problem.reason, problem.line
    lines = source.split("\n")
    if _NO_ELEMENT.search(reason):
        reason = "this picks a letter or item that is not there" + _for_whom(reason)
    elif (found := _NO_ATTRIBUTE.search(reason)) and reason.startswith("'"):
        path = _written_path(lines[line - 1] if line and line <= len(lines) else source, found.group(1))
        reason = not_usable(path, context) + _for_whom(reason)
    elif found := _UNDEFINED.match(reason):
        reason = not_usable(found.group(1), context) + _for_whom(reason)
    elif found := _NEVER_CLOSED.search(reason):
        tag = found.group(1)
        line = _opening_line(source, tag) or line
        reason = f"a `{{% {tag} %}}` is never closed: end it with `{{% end{tag} %}}`."
    elif "unexpected end of template" in reason.lower():
        reason = "a `{{` or `{%` is never closed: end it with `}}` or `%}`."
    elif found := _UNKNOWN_TAG.search(reason):
        reason = f"`{{% {found.group(1)} %}}` is not something a message can use."
    elif isinstance(problem, TemplateProblem) and _is_syntax(reason):
        reason = f"this line cannot be read: {reason.rstrip('.')}. Check its `{{{{ }}}}` and `{{% %}}`."
    else:
        for kind, words in _KINDS_OF_FAILURE.items():
            if reason.startswith(f"{kind}:"):
                reason = words + _for_whom(reason)
                break
    return replace(problem, line=line, reason=reason)


def _written_path(line: str, attribute: str) -> str:
    """`patient.nickname` as written on the line, from the attribute the render missed."""
    found = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(attribute)}\b", line) or \
        re.search(rf"([A-Za-z_][\w.]*)\[['\"]{re.escape(attribute)}['\"]\]", line)
    return f"{found.group(1)}.{attribute}" if found else attribute


def _for_whom(reason: str) -> str:
    """" (for a patient with no last name, ...)": which sample it failed for, when one was named."""
    found = re.search(r" \((for [^)]*)\)$", reason)
    return f" ({found.group(1)})" if found else ""


def _is_syntax(reason: str) -> bool:
    return reason.startswith(("unexpected", "expected token", "Unexpected", "tag name expected", "Encountered"))


def _opening_line(source: str, tag: str) -> int | None:
    """The line of the last `{% tag %}` left open (Jinja names the end of the template instead)."""
    opened: list[int] = []
    for found in re.finditer(r"{%-?\s*(end)?(\w+)", source):
        if found.group(2) != tag:
            continue
        if found.group(1):
            if opened:
                opened.pop()
        else:
            opened.append(source.count("\n", 0, found.start()) + 1)
    return opened[-1] if opened else None


def problem_message(problem: TemplateProblem) -> str:
    """"Line 3: `patient.nickname` is not ...", or the reason alone when it has no line."""
    reason = problem.reason[:1].upper() + problem.reason[1:] if not problem.line else problem.reason
    return f"Line {problem.line}: {reason}" if problem.line else reason


# ---------------------------------------------------------------- lifelines

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


def base_name(name: str) -> str:
    """reply_crisis for es/reply_crisis.sms.j2."""
    name = name.split("/", 1)[-1]
    suffix = SUFFIXES[part_of(name)]
    return name[: -len(suffix)] if name.endswith(suffix) else name


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


# ---------------------------------------------------------------- the segment budget

def may_split(settings, name: str) -> bool:
    """Whether this SMS template goes as several texts when it does not fit one: a reminder's or
    a nudge's (reminders.sending.SPLIT_KINDS); a question, a reply, a welcome goes whole."""
    if part_of(name) != "sms":
        return False
    base = base_name(name)
    return any(rule.template == base and rule.kind in SPLIT_KINDS
               for rule in default_rules(RuleSettings.from_settings(settings)))


def authored_parts(text: str) -> list[str]:
    """The texts as the template's author divided them, at its break lines (---)."""
    parts, current = [], []
    for line in text.split("\n"):
        if line.strip() == PART_BREAK:
            parts.append("\n".join(current))
            current = []
        else:
            current.append(line)
    parts.append("\n".join(current))
    return [part.strip("\n") for part in parts if part.strip()]


def over_budget(candidate: TemplateStore, settings, name: str, context: dict) -> OverBudget | None:
    """A text whose part would cost more than SMS_SEGMENTS (in GSM-7; the UCS-2 ones that hold as
    much) for the sample patient: the part named, with what it costs."""
    if part_of(name) != "sms":
        return None
    splits = may_split(settings, name)
    text = render(candidate, name, context, keep_break=splits)
    whole = without_break(text)
    if sms_length(whole).fits(SMS_SEGMENTS):
        return None
    parts = authored_parts(text) if splits else [whole]
    # A message that goes whole may cost what its shipped default costs (a Spanish emergency answer).
    allowance = 0 if splits else _default_segments(candidate, name, context)
    over = [(number, part) for number, part in enumerate(parts, start=1)
            if sms_length(part).segments > max(sms_length(part).allowed(SMS_SEGMENTS), allowance)]
    if not over:
        return None
    sent = texts_as_sent(candidate, name, context, splits)
    segments = sum(sms_length(part).segments for part in sent)
    number, part = over[0]
    length = sms_length(part)
    which = f"Text {number} of {len(parts)}" if len(parts) > 1 else "This text"
    limit = length.allowed(SMS_SEGMENTS)
    keeps_to = f"its default costs {allowance}" if allowance > limit else f"a text keeps to {limit}"
    reason = (f"{which} is {length.segments} segments ({len(part)} characters, {length.encoding}) for Alex Rivera; "
              f"{keeps_to}. Shorten it")
    reason += (", or put a line of three dashes (---) where the next text may begin." if splits else ".")
    reason += f" As it is, it would go as {segments} segments"
    reason += f" in {len(sent)} texts." if len(sent) > 1 else "."
    return OverBudget(name, None, reason, segments)


def _default_segments(store: TemplateStore, name: str, context: dict) -> int:
    """What the shipped default of this text costs for the sample patient (0 without one)."""
    default = store.default_source(name)
    if default is None:
        return 0
    try:
        return sms_length(render(CandidateStore(store, name, default), name, context)).segments
    except Exception:  # noqa: BLE001 - a default that cannot render sets no allowance
        return 0


# ---------------------------------------------------------------- the preview

@dataclass(frozen=True)
class Preview:
    text: str  # the message as one text (an email's part, a subject)
    part: str
    texts: tuple[str, ...] = ()  # an SMS: the texts the patient's phone gets, in order
    refusal: TemplateProblem | None = None  # what a save would be refused for (a lifeline, the budget)

    def as_json(self) -> dict:
        data = {"ok": True, "part": self.part, "text": self.text, "sms": None, "texts": [], "refusal": None}
        if self.part == "sms":
            data["sms"] = meter(self.text)
            data["texts"] = [{"text": text, "sms": meter(text)} for text in self.texts]
        if self.refusal is not None:
            data["refusal"] = {"message": problem_message(self.refusal),
                               "segments": getattr(self.refusal, "segments", None)}
        return data


def meter(text: str) -> dict:
    length = sms_length(text)
    return {"encoding": length.encoding, "units": length.units, "segments": length.segments,
            "per_segment": length.per_segment, "characters": len(text), "allowed": length.allowed()}


def preview(store: TemplateStore, settings, name: str, source: str) -> Preview | TemplateProblem:
    """What the sample patient gets, rendered the way a send renders it (the same function, the
    same context as sent, split into the same texts); a refusal a save would meet rides along."""
    labelled = labelled_contexts(store, settings, name)
    problem = _errors(store, settings, name, source, labelled)
    if problem is not None:
        return problem
    candidate = CandidateStore(store, name, source)
    context = labelled[0][1]
    try:
        text = render(candidate, name, context)
        texts = tuple(texts_as_sent(candidate, name, context, may_split(settings, name))) \
            if part_of(name) == "sms" else ()
        refusal = missing_lifeline(candidate, settings, name, labelled) or \
            over_budget(candidate, settings, name, context)
    except Exception as exc:  # noqa: BLE001 - passed the checks but failed now (a limit hit on a busy machine)
        return TemplateProblem(name, None, f"the preview failed: {type(exc).__name__}")
    return Preview(text, part_of(name), texts, refusal)


# ---------------------------------------------------------------- the variables list

GROUP_TITLES = {
    "patient": "The patient", "clinic": "The clinic", "visit": "The visit", "prep": "Preparation (the clinic's settings)",
    "next_visit": "The next visit booked", "answer": "The answer to their text", "checkin": "The check-in",
    "questionnaire": "The questionnaire",
}


@dataclass(frozen=True)
class VariableGroup:
    title: str
    names: tuple[tuple[str, str], ...]  # (dotted name, its value for the sample patient)
    sometimes_missing: bool = False  # `visit` for a message that may go without one


def variable_groups(store: TemplateStore, settings, name: str) -> list[VariableGroup]:
    """The names this message can use, from the very context its preview renders with."""
    context = template_context(store, settings, name)
    no_visit = _copes_without_visit(store, name, context)
    groups = []
    for key, value in context.items():
        if not isinstance(value, dict):
            continue
        names = tuple((path, _shown(_value_at(context, path))) for path in variable_paths({key: value}))
        groups.append(VariableGroup(GROUP_TITLES.get(key, key.replace("_", " ").capitalize()), names,
                                    key == "visit" and no_visit))
    return groups


def _copes_without_visit(store: TemplateStore, name: str, context: dict) -> bool:
    """Whether the message may go without a visit: its default renders without one (as in
    labelled_contexts, where an edit must then cope too)."""
    default = store.default_source(name)
    if default is None:
        return False
    try:
        compiled = environment(store).from_string(default)
    except TemplateSyntaxError:
        return False
    return render_problem(compiled, name, {**context, "visit": None}) is None


def _value_at(context: dict, path: str):
    value = context
    for part in path.split("."):
        value = value[part]
    return value


def _shown(value) -> str:
    if isinstance(value, bool):
        return "yes or no (here: yes)" if value else "yes or no (here: no)"
    if value is None or value == "":
        return "(empty)"
    text = str(value)
    return text if len(text) <= 48 else text[:47] + "…"


class PreviewBusy(Exception):
    """Too many checks or previews are running; the caller answers 503 at once."""


_slots = threading.BoundedSemaphore(PREVIEW_SLOTS)
_pool = ThreadPoolExecutor(max_workers=PREVIEW_SLOTS, thread_name_prefix="template-check")


def run_limited(function, *args):
    """Run a check or a preview on the checks' own threads; PreviewBusy when all are in use.

    The slot is held until the work ends, even when the request stopped waiting for it, so a
    slow template can never have more than PREVIEW_SLOTS threads rendering it."""
    if not _slots.acquire(blocking=False):
        raise PreviewBusy("other template previews are running")
    try:
        future = _pool.submit(function, *args)
    except BaseException:
        _slots.release()
        raise
    future.add_done_callback(lambda _f: _slots.release())
    try:
        return future.result(timeout=PREVIEW_WAIT)
    except FutureTimeout:
        raise PreviewBusy("the template check did not finish in time") from None
