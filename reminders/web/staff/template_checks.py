"""Checks a staff template must pass before it is saved, and the preview for a sample patient.

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

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes

from reminders.channels.segments import sms_length
from reminders.rendering import (
    SUFFIXES, TemplateProblem, TemplateStore, render_problem, environment, render, sample_context, template_language,
    validate_all,
)

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


def labelled_contexts(store: TemplateStore, settings, name: str) -> list[tuple[str, dict]]:
    """The contexts a candidate must render in: each one its default renders in.

    Some messages go without a visit (the welcome text, most replies to a patient's text). When
    the default copes with `visit` being None, an edited version must cope too.
    """
    base = sample_context(settings, template_language(name))
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


def sample_contexts(store: TemplateStore, settings, name: str) -> list[dict]:
    return [context for _label, context in labelled_contexts(store, settings, name)]


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


def check(store: TemplateStore, settings, name: str, source: str) -> TemplateProblem | None:
    if not source.strip():
        return TemplateProblem(name, None, "the template is empty")
    if len(source) > MAX_SOURCE:
        return TemplateProblem(name, None, f"the template is longer than {MAX_SOURCE} characters")
    deadline = time.monotonic() + CHECK_TIME_LIMIT
    labelled = labelled_contexts(store, settings, name)
    candidate = CandidateStore(store, name, source)
    contexts = [context for _label, context in labelled]
    with_visit = [context for context in contexts if context["visit"] is not None]
    problem = validate_all(candidate, name, source, labelled, deadline)
    if problem is not None:
        return problem
    return _unknown_names(candidate, name, source, (with_visit or contexts)[0])


def _unknown_names(store: TemplateStore, name: str, source: str, context: dict) -> TemplateProblem | None:
    env = environment(store)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(name, exc.lineno, exc.message or "syntax error")
    known = set(context) | set(env.globals)
    for variable in sorted(meta.find_undeclared_variables(tree) - known):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == variable), None)
        return TemplateProblem(name, line, f"'{variable}' is undefined")
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
                return TemplateProblem(name, node.lineno, f"'{'.'.join(map(str, path[:depth]))}' has no attribute "
                                                          f"'{part}'")
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


@dataclass(frozen=True)
class Preview:
    text: str
    part: str

    def as_json(self) -> dict:
        data = {"ok": True, "part": self.part, "text": self.text, "sms": None}
        if self.part == "sms":
            length = sms_length(self.text)
            data["sms"] = {"encoding": length.encoding, "units": length.units, "segments": length.segments,
                           "per_segment": length.per_segment, "characters": len(self.text),
                           "allowed": length.allowed()}
        return data


def preview(store: TemplateStore, settings, name: str, source: str) -> Preview | TemplateProblem:
    problem = check(store, settings, name, source)
    if problem is not None:
        return problem
    try:
        text = render(CandidateStore(store, name, source), name, sample_context(settings, template_language(name)))
    except Exception as exc:  # noqa: BLE001 - passed the checks but failed now (a limit hit on a busy machine)
        return TemplateProblem(name, None, f"the preview failed: {type(exc).__name__}")
    return Preview(text, part_of(name))


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
