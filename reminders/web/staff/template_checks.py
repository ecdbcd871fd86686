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

The parts live by job: the samples and the candidate's store (template_samples), plain words
(template_words), lifelines (template_lifelines), the segment budget (template_budget) and the
editor's list of names (template_variables); this module runs them and names them for the editor.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes

from reminders.rendering import TemplateProblem, TemplateStore, environment, render, texts_as_sent, validate_all
from reminders.text_segments import sms_length
from reminders.web.staff.template_budget import OverBudget, may_split, over_budget
from reminders.web.staff.template_lifelines import LIFELINES, MissingLifeline, lifelines_of, missing_lifeline
from reminders.web.staff.template_samples import (
    CandidateStore, base_name, labelled_contexts, part_of, segmented, template_context,
)
from reminders.web.staff.template_variables import variable_groups
from reminders.web.staff.template_words import not_usable, plain_words, problem_message, variable_paths

# What the template editor (templates_admin) and the checks' callers find here.
__all__ = [
    "LIFELINES", "MissingLifeline", "OverBudget", "Preview", "PreviewBusy", "assess", "base_name", "check",
    "lifelines_of", "may_split", "part_of", "preview", "problem_message", "run_limited", "segmented",
    "template_context", "variable_groups", "variable_paths",
]

MAX_SOURCE = 20_000
CHECK_TIME_LIMIT = 2.0  # seconds for all the sample renders of one check
PREVIEW_SLOTS = 2  # checks and previews running at once, in the whole process
PREVIEW_WAIT = 5.0  # seconds a request waits for its check before answering "busy"


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


# ---------------------------------------------------------------- the preview

@dataclass(frozen=True)
class Preview:
    text: str  # the message as one text (an email's part, a subject)
    part: str
    texts: tuple[str, ...] = ()  # an SMS: the texts the patient's phone gets, in order
    refusal: TemplateProblem | None = None  # what a save would be refused for (a lifeline, the budget)
    segmented: bool = False  # billed in SMS segments: measured, and shown as the texts a phone gets

    def as_json(self) -> dict:
        data = {"ok": True, "part": self.part, "text": self.text, "sms": None, "texts": [], "refusal": None}
        if self.segmented:
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
            if segmented(name) else ()
        refusal = missing_lifeline(candidate, settings, name, labelled) or \
            over_budget(candidate, settings, name, context)
    except Exception as exc:  # noqa: BLE001 - passed the checks but failed now (a limit hit on a busy machine)
        return TemplateProblem(name, None, f"the preview failed: {type(exc).__name__}")
    return Preview(text, part_of(name), texts, refusal, segmented(name))


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
