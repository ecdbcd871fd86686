"""Checks a staff template must pass before it is saved, and the preview for a sample patient.

reminders.rendering.validate renders the candidate once in the sandbox with strict undefined
names. A branch the sample does not take would hide a typo until a real patient hits it, so the
candidate is also rendered for a few sample visits, and its names are checked statically.
"""
from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, meta, nodes

from reminders.channels.segments import sms_length
from reminders.rendering import SUFFIXES, TemplateProblem, TemplateStore, environment, render, sample_context, validate

MAX_SOURCE = 20_000


def part_of(name: str) -> str:
    """sms | subject | text | html, from the file name."""
    for part, suffix in SUFFIXES.items():
        if name.endswith(suffix):
            return part
    return "text"


VISIT_VARIANTS = (
    {},
    {"is_first": True, "number": 1},
    {"kind": "maintenance", "number": 1, "is_first": False},
    {"location": ""},
)


def sample_contexts(store: TemplateStore, settings, name: str) -> list[dict]:
    """The contexts a candidate must render in: each one its default renders in.

    Some messages go without a visit (the welcome text, most replies to a patient's text). When
    the default copes with `visit` being None, an edited version must cope too.
    """
    base = sample_context(settings)
    contexts = [{**base, "visit": {**base["visit"], **change}} for change in VISIT_VARIANTS]
    contexts.append({**base, "visit": None})
    default = store.default_source(name)
    if default is None:
        return contexts[:-1]
    working = [context for context in contexts if validate(store, name, default, context) is None]
    return working or contexts[:1]


class CandidateStore(TemplateStore):
    """The clinic's store, with one template replaced by the text being edited."""

    def __init__(self, store: TemplateStore, name: str, source: str):
        super().__init__(store.templates_dir, store.session)
        self.candidate_name, self.candidate_source = name, source

    def source(self, name: str) -> str | None:
        if name == self.candidate_name:
            return self.candidate_source
        return super().source(name)


def check(store: TemplateStore, settings, name: str, source: str) -> TemplateProblem | None:
    if not source.strip():
        return TemplateProblem(name, None, "the template is empty")
    if len(source) > MAX_SOURCE:
        return TemplateProblem(name, None, f"the template is longer than {MAX_SOURCE} characters")
    contexts = sample_contexts(store, settings, name)
    candidate = CandidateStore(store, name, source)
    for context in contexts:
        problem = validate(candidate, name, source, context)
        if problem is not None:
            return problem
    with_visit = [context for context in contexts if context["visit"] is not None]
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
                           "per_segment": length.per_segment, "characters": len(self.text)}
        return data


def preview(store: TemplateStore, settings, name: str, source: str) -> Preview | TemplateProblem:
    problem = check(store, settings, name, source)
    if problem is not None:
        return problem
    return Preview(render(CandidateStore(store, name, source), name, sample_context(settings)), part_of(name))
