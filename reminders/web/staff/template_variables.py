"""The names a message can use, grouped as the template editor lists them, with their values
for the sample patient."""
from __future__ import annotations

from dataclasses import dataclass

from jinja2 import TemplateSyntaxError

from reminders.rendering import TemplateStore, environment, render_problem
from reminders.web.staff.template_samples import template_context
from reminders.web.staff.template_words import variable_paths

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
