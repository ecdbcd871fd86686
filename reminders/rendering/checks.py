"""A candidate template checked before it is saved: parsed, then rendered in the sandbox for sample
contexts within the render budget; a problem names its line."""
from __future__ import annotations

import time
from dataclasses import dataclass

from jinja2 import TemplateError, TemplateSyntaxError

from reminders.rendering.budget import RENDER_TIME_LIMIT
from reminders.rendering.engine import TemplateSources, environment, template_line


@dataclass(frozen=True)
class TemplateProblem:
    """What stops a template from rendering: its name, its line when known, and why."""

    name: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "template"
        return f"{self.name}, {where}: {self.reason}"


def validate(store: TemplateSources, name: str, source: str, context: dict,
             time_limit: float = RENDER_TIME_LIMIT) -> TemplateProblem | None:
    """Parse and render a candidate source with a sample context; the problem names its line."""
    return validate_all(store, name, source, [("", context)], time.monotonic() + time_limit)


def validate_all(store: TemplateSources, name: str, source: str, contexts: list[tuple[str, dict]],
                 deadline: float) -> TemplateProblem | None:
    """Parse once, then render with each (label, context), each within RENDER_TIME_LIMIT and all
    before `deadline` (time.monotonic()). A problem names its line and, when labelled, the sample."""
    env = environment(store)
    compiling = time.monotonic()
    try:
        template = env.from_string(source)
    except TemplateSyntaxError as exc:
        return TemplateProblem(name, exc.lineno, exc.message or "syntax error")
    # The budget is for running the template: compiling it is bounded by the source's size limit,
    # and on a busy machine a cold compile alone could use up a render's share.
    deadline += time.monotonic() - compiling
    for label, context in contexts:
        left = deadline - time.monotonic()
        if left <= 0:
            return TemplateProblem(name, None, "the template is too slow: rendering it for the sample patients "
                                               "took too long")
        env.time_limit = min(RENDER_TIME_LIMIT, left)
        problem = render_problem(template, name, context)
        if problem is not None:
            return TemplateProblem(name, problem.line, f"{problem.reason} (for {label})" if label else problem.reason)
    return None


def render_problem(template, name: str, context: dict) -> TemplateProblem | None:
    try:
        template.render(**context)
    except TemplateError as exc:
        return TemplateProblem(name, template_line(exc), str(exc.message if hasattr(exc, "message") else exc))
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate template is a refusal
        return TemplateProblem(name, template_line(exc), f"{type(exc).__name__}: {exc}")
    return None
