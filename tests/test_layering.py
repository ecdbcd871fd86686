"""The layers of reminders/: an import points down or sideways, never up, and never in a circle.

Every module is placed in a layer below (a new module fails `test_every_module_is_placed` until it
is). The imports are read from the source with `ast`: `import x` and `from x import y`, relative
ones resolved, those inside functions and under TYPE_CHECKING included.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "reminders"

# Bottom to top. A module may import its own layer and the layers below it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("ground", (
        "reminders", "reminders.config", "reminders.zones", "reminders.logs", "reminders.calendar",
        "reminders.channels.segments", "reminders.preparation", "reminders.interruptions", "reminders.heartbeats", "reminders.clock",
        "reminders.fhir", "reminders.fhir.settings",
    )),
    ("models", (
        "reminders.models", "reminders.models.base", "reminders.models.appointments", "reminders.models.imports",
        "reminders.models.outbox", "reminders.models.patients", "reminders.models.provider_health",
        "reminders.models.replies", "reminders.models.staff", "reminders.models.measures", "reminders.db",
        "reminders.migrations", "reminders.migrations.env", "reminders.migrations.versions.*",
        "reminders.models.fhir",
        "reminders.models.saved_replies",
        "reminders.models.locations",
        "reminders.locations",  # a visit's location read over the settings; the one writer of locations
        # A visit's status moves (the one writer of Appointment.status) and its place in the series.
        "reminders.visits", "reminders.visits.moves", "reminders.visits.series",
    )),
    # The one writer of a patient's consent and of check-ins (tests/test_owners.py): sending,
    # inbound and retention go through them; they import only models, config and the clock.
    ("owners", (
        "reminders.consent", "reminders.checkins",
    )),
    ("rules", (
        "reminders.planning", "reminders.planning.rules", "reminders.planning.quiet_hours",
        "reminders.planning.course_dates", "reminders.planning.budget",
        "reminders.planning.spreading", "reminders.planning.retries", "reminders.planning.send_checks",
        "reminders.measures", "reminders.measures.scales",
        # a scale's parts: what it is made of, its file, scoring answers, response and remission
        "reminders.measures.scale_definitions", "reminders.measures.scale_files", "reminders.measures.scoring",
        "reminders.measures.response_rules",
        "reminders.triage", "reminders.triage.engine", "reminders.triage.numbers", "reminders.triage.languages",
        "reminders.triage.model", "reminders.triage.training",
    )),
    # The outbox row and what carries it: writing and moving rows, channels, rendering a message.
    # planning.welcome (the welcome text's own row) is outbox code.
    ("outbox, channels, rendering", (
        "reminders.outbox", "reminders.outbox.rows", "reminders.outbox.moves", "reminders.outbox.delivery",
        # the moves' parts: what is allowed, handing rows out, a send, other outcomes, plan changes
        "reminders.outbox.moves.allowed", "reminders.outbox.moves.claims", "reminders.outbox.moves.sends",
        "reminders.outbox.moves.outcomes", "reminders.outbox.moves.plan_changes",
        "reminders.outbox.resend",  # a failed or expired message put back in the schedule
        "reminders.no_show_undo",
        "reminders.planning.welcome", "reminders.planning.visit_texts",
        "reminders.channels", "reminders.channels.base", "reminders.channels.kinds",
        "reminders.channels.local_outbox", "reminders.channels.smtp_email",
        "reminders.channels.twilio", "reminders.channels.twilio.client", "reminders.channels.twilio.codes",
        "reminders.channels.twilio.webhooks",
        "reminders.rendering", "reminders.rendering.budget", "reminders.rendering.sizes",
        "reminders.rendering.filters", "reminders.rendering.engine", "reminders.rendering.store",
        "reminders.rendering.messages", "reminders.rendering.splitting", "reminders.rendering.checks",
        "reminders.rendering.context",
        "reminders.provider_health", "reminders.pacing",
        "reminders.metrics",
    )),
    # What patients and providers send back: it must not reach into sending or planning.
    ("inbound", (
        "reminders.inbound", "reminders.inbound.delivery", "reminders.inbound.escalations",
        "reminders.inbound.office_hours", "reminders.inbound.parsing", "reminders.inbound.replies",
        "reminders.inbound.symptoms", "reminders.measures.questionnaires", "reminders.measures.progress",
        "reminders.measures.outcomes", "reminders.inbound.item_answers", "reminders.inbound.questionnaire_replies",
        "reminders.inbound.answers", "reminders.inbound.consent_words", "reminders.inbound.phrases",
        "reminders.inbound.checkin_links", "reminders.inbound.open_questions",
        "reminders.inbound.conversation", "reminders.inbound.sender_lookup", "reminders.inbound.keywords",
        "reminders.inbound.checkin_answers", "reminders.inbound.reply_texts", "reminders.inbound.inbox_rank",
        "reminders.inbound.escalation_kinds", "reminders.inbound.escalation_alerts", "reminders.inbound.reply_keywords",
        "reminders.inbound.question_topics",
        "reminders.missed_visits",  # a missed visit's staff task (an inbox item) and the visit its text names
    )),
    ("sending", (
        "reminders.sending", "reminders.sending.outcomes", "reminders.sending.gate", "reminders.sending.compose",
        "reminders.sending.numbers", "reminders.sending.handover", "reminders.sending.records",
        "reminders.sending.batch", "reminders.sending.sender",
    )),
    # The clinic's records coming in and what they call for: visits planned, patients imported,
    # follow-ups, staff accounts. The planner writes through the outbox, so it sits above it.
    ("planning and intake", (
        "reminders.planning.planner", "reminders.intake", "reminders.intake.csv_import",
        # the planner's parts: a run's reads and writes, one visit, what it wants, and why not
        "reminders.planning.planning_run", "reminders.planning.one_visit", "reminders.planning.wanted_texts",
        "reminders.planning.one_text_a_day", "reminders.planning.withdrawals", "reminders.planning.duplicate_bookings",
        "reminders.planning.marking",
        "reminders.intake.import_jobs", "reminders.intake.records", "reminders.intake.upsert",
        "reminders.intake.batch", "reminders.intake.bulk_sql", "reminders.intake.csv_file", "reminders.intake.csv_rows",
        "reminders.followup", "reminders.accounts",
        "reminders.mfa", "reminders.audit_chain", "reminders.retention",
        "reminders.hl7", "reminders.hl7.mapping", "reminders.hl7.ack", "reminders.hl7.apply",
        "reminders.fhir.client", "reminders.fhir.mapping", "reminders.fhir.sync",
    )),
    ("pipeline", (
        "reminders.dispatch", "reminders.alert_queue", "reminders.pipeline", "reminders.tasks", "reminders.celery_app",
        "reminders.fhir.task",
    )),
    ("web and cli", (
        "reminders.web", "reminders.web.context", "reminders.web.api", "reminders.web.api_auth",
        "reminders.web.api_replies", "reminders.web.api_requests", "reminders.web.api_measures", "reminders.web.health",
        "reminders.web.serialize", "reminders.web.twilio_hooks", "reminders.web.metrics_page", "reminders.web.openapi",
        "reminders.web.openapi_schemas", "reminders.web.openapi_answers",
        "reminders.web.questionnaire_pages", "reminders.web.questionnaire_words", "reminders.web.rate_limits",
        "reminders.web.checkin_pages",
        "reminders.web.staff", "reminders.web.staff.audit", "reminders.web.staff.auth",
        "reminders.web.staff.account",
        "reminders.web.staff.charts", "reminders.web.staff.display", "reminders.web.staff.escalations", "reminders.web.staff.forms",
        "reminders.web.staff.headers", "reminders.web.staff.inbox", "reminders.web.staff.live", "reminders.web.staff.patients",
        "reminders.web.staff.queries", "reminders.web.staff.template_checks",
        "reminders.web.staff.template_samples", "reminders.web.staff.template_words",
        "reminders.web.staff.template_lifelines", "reminders.web.staff.template_budget",
        "reminders.web.staff.template_variables",
        "reminders.web.staff.templates_admin", "reminders.web.staff.today", "reminders.web.staff.users",
        "reminders.web.staff.visits", "reminders.web.staff.door_checks",
        "reminders.web.staff.visit_pages", "reminders.web.staff.visit_fields", "reminders.web.staff.patient_form",
        "reminders.web.staff.visit_marks", "reminders.web.staff.visit_courses", "reminders.web.staff.visit_imports",
        "reminders.web.staff.measures_chart", "reminders.web.staff.measures_view", "reminders.web.staff.report_pdf",
        "reminders.web.staff.reports", "reminders.web.staff.downloads",
        "reminders.web.staff.outcomes",
        "reminders.web.staff.resend", "reminders.web.staff.provider_banner", "reminders.web.staff.message_state",
        "reminders.web.staff.saved_replies", "reminders.web.staff.broadcast",
        "reminders.web.staff.saved_reply_filling",
        "reminders.web.staff.locations", "reminders.web.staff.location_filter",
        "reminders.cli", "reminders.cli.__main__", "reminders.cli.common", "reminders.cli.feeds", "reminders.cli.imports",
        "reminders.cli.locations", "reminders.cli.records", "reminders.cli.service", "reminders.cli.staff_accounts",
        "reminders.cli.tokens", "reminders.cli.triage_model",
        "reminders.demo", "reminders.runner",
        "reminders.hl7.listener",
        "reminders.fhir.cli",
    )),
]

@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported}"


def module_name(path: Path, root: Path = PACKAGE_DIR) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def _known(name: str, modules: set[str]) -> str:
    """The module an import loads: the name itself, else its longest known prefix."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str, source: str, modules: set[str], path: str = "", is_package: bool = False) -> list[Import]:
    """Every import of one of our modules in `source`, wherever it stands in the file."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            # `from a import b` loads the module a.b when there is one, else takes a name from a.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == "reminders" or name.startswith("reminders."):
                found.append(Import(module, _known(name, modules), path, node.lineno))
    return list(dict.fromkeys(found))  # `from a import b, c` is one arrow when b and c are names


def layer_of(module: str) -> int | None:
    for index, (_name, members) in enumerate(LAYERS):
        if module in members:
            return index
        if any(member.endswith(".*") and module.startswith(member[:-1]) for member in members):
            return index
    return None


def wrong_way(imports: Iterable[Import]) -> list[Import]:
    """Imports from a lower layer into a higher one."""
    return [i for i in imports
            if (mine := layer_of(i.importer)) is not None and (theirs := layer_of(i.imported)) is not None
            and theirs > mine]


def cycles(imports: Iterable[Import]) -> list[list[str]]:
    """Groups of modules that import each other, directly or round a circle (Tarjan's SCCs)."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        if i.importer != i.imported:
            graph.setdefault(i.importer, set()).add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


@lru_cache(maxsize=1)
def all_imports() -> tuple[Import, ...]:
    files = source_files()
    modules = set(files)
    found = []
    for module, path in files.items():
        shown = str(path.relative_to(PACKAGE_DIR.parent))
        found += imports_of(module, path.read_text(), modules, shown, path.name == "__init__.py")
    return tuple(found)


def _layer_name(module: str) -> str:
    return LAYERS[layer_of(module)][0]


# ---------------------------------------------------------------- the house as it is

def test_every_module_is_placed():
    missing = sorted(module for module in source_files() if layer_of(module) is None)
    assert not missing, "place these modules in a layer in tests/test_layering.py LAYERS: " + ", ".join(missing)


def test_no_module_is_placed_twice():
    placed = [member for _name, members in LAYERS for member in members]
    assert len(placed) == len(set(placed)), sorted({m for m in placed if placed.count(m) > 1})


def test_imports_point_down():
    wrong = wrong_way(all_imports())
    assert not wrong, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"{i} ({_layer_name(i.importer)!r} below {_layer_name(i.imported)!r})" for i in wrong)


def test_no_import_cycles():
    imports = all_imports()
    found = cycles(imports)
    lines = []
    for group in found:
        members = set(group)
        lines.append(" <-> ".join(group))
        lines += [f"    {i}" for i in imports if i.importer in members and i.imported in members]
    assert not found, "modules that import each other:\n" + "\n".join(lines)


# ---------------------------------------------------------------- the check itself can fail

def test_a_wrong_way_arrow_is_caught_with_its_file_and_line():
    modules = set(source_files())
    source = (
        "from reminders.logs import mask_phone\n"
        "import reminders.intake.records\n"
        "\n"
        "def zone():\n"
        "    from reminders.web.context import settings\n"
        "    return settings()\n"
    )
    wrong = wrong_way(imports_of("reminders.config", source, modules, "reminders/config.py"))
    assert [str(i) for i in wrong] == [
        "reminders/config.py:2: reminders.config imports reminders.intake.records",
        "reminders/config.py:5: reminders.config imports reminders.web.context",
    ]


def test_relative_imports_are_resolved():
    modules = set(source_files())
    source = "from ..sending import Sender\nfrom . import replies\nfrom .parsing import classify\n"
    found = imports_of("reminders.inbound.delivery", source, modules, "reminders/inbound/delivery.py")
    assert [(i.imported, i.line) for i in found] == [
        ("reminders.sending", 1), ("reminders.inbound.replies", 2), ("reminders.inbound.parsing", 3),
    ]
    assert [i.imported for i in wrong_way(found)] == ["reminders.sending"]
    in_package = imports_of("reminders.web", "from .api import api\n", modules, is_package=True)
    assert [i.imported for i in in_package] == ["reminders.web.api"]


def test_a_circle_is_caught():
    modules = set(source_files())
    imports = (imports_of("reminders.web.api", "from reminders.web.api_replies import api_replies\n", modules)
               + imports_of("reminders.web.api_replies", "def later():\n    from reminders.web import api\n", modules)
               + imports_of("reminders.web.health", "from reminders.web.api import api\n", modules))
    assert cycles(imports) == [["reminders.web.api", "reminders.web.api_replies"]]


# The wrong-way arrows the house had before the outbox got its owner: each must still be caught.
OLD_ARROWS = [
    ("reminders.config", "from reminders.intake.records import check_time_zone\n"),
    ("reminders.inbound.delivery", "from reminders.sending import fall_back_to_email\n"),
    ("reminders.inbound.escalations", "from reminders.planning.planner import insert_ignoring_duplicates\n"),
    ("reminders.sending", "from reminders.planning.planner import appointment_key\n"),
]


@pytest.mark.parametrize("importer, source", OLD_ARROWS, ids=[importer for importer, _ in OLD_ARROWS])
def test_the_old_wrong_way_arrows_would_fail(importer, source):
    found = imports_of(importer, source, set(source_files()))
    assert wrong_way(found), f"{importer}: {source.strip()} is not caught"


# ---------------------------------------------------------------- third-party libraries stay in their place

# A library that ties the code to one way of running it lives in the modules that run that way:
# Flask in the web app, Celery (and its kombu) in the modules that hand out and run tasks, the
# twilio library behind the Twilio channel. Everything else talks to them through those modules.
TASK_MODULES = ("reminders.celery_app", "reminders.tasks", "reminders.fhir.task", "reminders.dispatch",
                "reminders.alert_queue")
LIBRARY_HOMES: dict[str, tuple[str, ...]] = {
    "flask": ("reminders.web", "reminders.web.*"),
    "werkzeug": ("reminders.web", "reminders.web.*"),
    "celery": TASK_MODULES,
    "kombu": TASK_MODULES,
    "twilio": ("reminders.channels.twilio", "reminders.channels.twilio.*"),
}


def _at_home(module: str, homes: tuple[str, ...]) -> bool:
    return any(module == home or (home.endswith(".*") and module.startswith(home[:-1])) for home in homes)


def library_imports_of(module: str, source: str, path: str = "") -> list[tuple[str, str, int]]:
    """(library, path, line) for each import of a library of LIBRARY_HOMES, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.partition(".")[0]
            if top in LIBRARY_HOMES:
                found.append((top, path, node.lineno))
    return found


def libraries_out_of_place(module: str, source: str, path: str = "") -> list[str]:
    return [f"{where}:{line}: {module} imports {library} (only {', '.join(LIBRARY_HOMES[library])} may)"
            for library, where, line in library_imports_of(module, source, path)
            if not _at_home(module, LIBRARY_HOMES[library])]


def test_libraries_stay_in_their_modules():
    wrong = []
    for module, path in source_files().items():
        wrong += libraries_out_of_place(module, path.read_text(), str(path.relative_to(PACKAGE_DIR.parent)))
    assert not wrong, "\n".join(wrong)


def test_a_library_out_of_place_is_caught():
    source = "import flask\nfrom celery import Celery\n\ndef later():\n    from twilio.rest import Client\n"
    assert [line.split(": ", 1)[1].split(" (")[0] for line in libraries_out_of_place("reminders.sending", source)] == [
        "reminders.sending imports flask", "reminders.sending imports celery", "reminders.sending imports twilio"]
    assert libraries_out_of_place("reminders.web.api", "from flask import Blueprint\n") == []
    assert libraries_out_of_place("reminders.channels.twilio.client", "from twilio.rest import Client\n") == []
