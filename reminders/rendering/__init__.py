"""Message templates: the files in templates/ are the defaults; staff versions in the database win.

Rendering happens in Jinja2's sandbox with StrictUndefined, so a template can neither reach
Python internals nor silently print an empty name. The sandbox also has a budget: a render is
cut off after RENDER_TIME_LIMIT seconds or MAX_OUTPUT characters (LimitedEnvironment), so a
staff template with a runaway loop costs one message a fraction of a second, not a worker.

When a staff version fails while a message is rendered, the default file is rendered instead
(the patient still gets a correct message) and the failure is kept on the store for the caller
to flag the version to admins (`flag_failures`).

The parts: budget (time and size of one render), sizes and filters (what a step would build,
measured before it runs), engine (the sandbox, compiling), store (template files and staff
versions; which template a message part uses), messages (a message rendered and tidied),
splitting (a long text as several), checks (a candidate template before it is saved) and
context (what a template may use).
"""
from reminders.rendering.budget import MAX_OUTPUT, RENDER_TIME_LIMIT, LimitedTemplate, RenderLimitExceeded
from reminders.rendering.checks import TemplateProblem, render_problem, validate, validate_all
from reminders.rendering.context import (
    SAMPLE_START, SAMPLE_ZONE, clinic_context, message_context, patient_context, room_words, sample_context,
    team_name, team_name_es, template_language, visit_context,
)
from reminders.rendering.engine import LimitedEnvironment, environment
from reminders.rendering.messages import render, texts_as_sent
from reminders.rendering.splitting import PART_BREAK, SMS_SEGMENTS, text_parts, without_break
from reminders.rendering.store import (
    VERSIONS_CHECK_SECONDS, TemplateStore, flag_failures, localized, message_templates, text_template,
    versions_marker,
)

__all__ = [
    "MAX_OUTPUT", "PART_BREAK", "RENDER_TIME_LIMIT", "SAMPLE_START", "SAMPLE_ZONE", "SMS_SEGMENTS",
    "VERSIONS_CHECK_SECONDS", "LimitedEnvironment", "LimitedTemplate", "RenderLimitExceeded", "TemplateProblem",
    "TemplateStore", "clinic_context", "environment", "flag_failures", "localized", "message_context",
    "message_templates", "patient_context", "render", "render_problem", "room_words", "sample_context",
    "team_name", "team_name_es", "template_language", "text_parts", "text_template", "texts_as_sent",
    "validate", "validate_all", "versions_marker", "visit_context", "without_break",
]
