"""The layers of reminders/: an import points down or sideways, never up, and never in a circle.

A layer holds packages (each with every module in it) and single top-level modules. Every module is
placed (a new package or top-level module fails `test_every_module_is_placed` until it is), a
package sits in one layer, and no two modules and no two packages import each other, directly or
round a circle. The imports are read from the source with `ast`: `import x` and `from x import y`,
relative ones resolved, those inside functions and under TYPE_CHECKING included.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "reminders"

Layers = list[tuple[str, tuple[str, ...]]]

# Bottom to top. A module may import its own layer and the layers below it. An entry is a package
# (reminders.outbox: every module under reminders/outbox/) or a top-level module (reminders.config).
LAYERS: Layers = [
    ("ground", (
        "reminders", "reminders.config", "reminders.fhir_settings", "reminders.zones", "reminders.logs",
        "reminders.calendar", "reminders.text_segments", "reminders.channel_specs", "reminders.preparation",
        "reminders.interruptions",
        "reminders.heartbeats", "reminders.clock",
    )),
    ("models", (
        "reminders.models", "reminders.db", "reminders.migrations",
        "reminders.locations",  # a visit's location read over the settings; the one writer of locations
        # A visit's status moves (the one writer of Appointment.status) and its place in the series.
        "reminders.visits",
    )),
    # The one writer of a patient's consent and of check-ins (tests/test_owners.py): sending,
    # inbound and retention go through them; they import only models, config and the clock.
    ("owners", (
        "reminders.consent", "reminders.checkins",
    )),
    # Pure rules: when messages go (timing), scoring questionnaires (scales), triage of a text.
    ("rules", (
        "reminders.timing", "reminders.scales", "reminders.triage",
    )),
    # The outbox row and what carries it: writing and moving rows (the welcome text's own row and
    # the texts-per-visit check at send time among them), channels, rendering a message.
    ("outbox, channels, rendering", (
        "reminders.outbox", "reminders.no_show_undo", "reminders.channels", "reminders.rendering",
        "reminders.provider_health", "reminders.pacing", "reminders.metrics",
    )),
    # Crisis escalations: opened from a reply or a questionnaire answer, alerted through the outbox.
    ("escalations", (
        "reminders.escalations",
    )),
    # Questionnaires put to patients, a course's progress and the clinic's outcomes.
    ("measures", (
        "reminders.measures",
    )),
    # What patients and providers send back: it must not reach into sending or planning.
    ("inbound", (
        "reminders.inbound",
        "reminders.missed_visits",  # a missed visit's staff task (an inbox item) and the visit its text names
    )),
    ("sending", (
        "reminders.sending",
    )),
    # The clinic's records coming in and what they call for: visits planned, patients imported (by
    # CSV and HL7), follow-ups, staff accounts. The planner writes through the outbox, so it sits above it.
    ("planning and intake", (
        "reminders.planning", "reminders.intake", "reminders.hl7", "reminders.followup", "reminders.accounts",
        "reminders.mfa", "reminders.audit_chain", "reminders.retention",
    )),
    # Passes and tasks: the FHIR sync is a beat task that runs the intake and the planner.
    ("pipeline", (
        "reminders.dispatch", "reminders.alert_queue", "reminders.pipeline", "reminders.tasks", "reminders.celery_app",
        "reminders.fhir",
    )),
    ("web and cli", (
        "reminders.web", "reminders.cli", "reminders.demo", "reminders.runner",
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


def package_of(module: str) -> str:
    """The package a module belongs to (reminders.outbox for reminders.outbox.moves.claims), or the
    top-level module itself."""
    return ".".join(module.split(".")[:2])


def _covers(entry: str, module: str) -> bool:
    return module == entry or (entry != "reminders" and module.startswith(entry + "."))


def layer_of(module: str, layers: Layers = LAYERS) -> int | None:
    """The layer of the most specific entry that covers the module."""
    placed = [(len(entry), index) for index, (_name, members) in enumerate(layers)
              for entry in members if _covers(entry, module)]
    return max(placed)[1] if placed else None


def packages_across_layers(modules: Iterable[str], layers: Layers = LAYERS) -> dict[str, list[str]]:
    """Packages whose modules fall in more than one layer, with those layers."""
    found: dict[str, set[int]] = {}
    for module in modules:
        if (layer := layer_of(module, layers)) is not None:
            found.setdefault(package_of(module), set()).add(layer)
    return {package: [layers[i][0] for i in sorted(found[package])] for package in sorted(found)
            if len(found[package]) > 1}


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


def package_imports(imports: Iterable[Import]) -> list[Import]:
    """The same arrows between packages (and top-level modules); those inside a package left out."""
    return [Import(package_of(i.importer), package_of(i.imported), i.path, i.line) for i in imports
            if package_of(i.importer) != package_of(i.imported)]


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
    assert not missing, "place these modules (their package) in a layer in tests/test_layering.py LAYERS: " + \
        ", ".join(missing)


def test_layers_name_packages_and_top_level_modules():
    modules = set(source_files())
    wrong = [entry for _name, members in LAYERS for entry in members
             if entry not in modules or (entry != "reminders" and package_of(entry) != entry)]
    assert not wrong, "LAYERS names a package or a top-level module that exists: " + ", ".join(wrong)


def test_no_module_is_placed_twice():
    placed = [member for _name, members in LAYERS for member in members]
    assert len(placed) == len(set(placed)), sorted({m for m in placed if placed.count(m) > 1})


def test_each_package_sits_in_one_layer():
    across = packages_across_layers(source_files())
    assert not across, "packages whose modules fall in more than one layer:\n" + "\n".join(
        f"{package}: {', '.join(layers)}" for package, layers in across.items())


def test_imports_point_down():
    wrong = wrong_way(all_imports())
    assert not wrong, "imports from a lower layer to a higher one:\n" + "\n".join(
        f"{i} ({_layer_name(i.importer)!r} below {_layer_name(i.imported)!r})" for i in wrong)


def _circles(imports: list[Import]) -> list[str]:
    lines = []
    for group in cycles(imports):
        members = set(group)
        lines.append(" <-> ".join(group))
        lines += [f"    {i}" for i in imports if i.importer in members and i.imported in members]
    return lines


def test_no_import_cycles():
    lines = _circles(list(all_imports()))
    assert not lines, "modules that import each other:\n" + "\n".join(lines)


def test_no_package_cycles():
    lines = _circles(package_imports(all_imports()))
    assert not lines, "packages that import each other:\n" + "\n".join(lines)


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
    found = imports_of("reminders.inbound.delivery_reports", source, modules, "reminders/inbound/delivery_reports.py")
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


def test_a_package_circle_is_caught_where_modules_make_none():
    modules = set(source_files())
    imports = (imports_of("reminders.inbound.questionnaire_replies", "from reminders.measures.questionnaires import x\n",
                          modules)
               + imports_of("reminders.measures.questionnaires", "from reminders.escalations import open_escalation\n",
                            modules)
               + imports_of("reminders.escalations", "from reminders.inbound.parsing import classify\n", modules))
    assert cycles(imports) == []
    assert cycles(package_imports(imports)) == [["reminders.escalations", "reminders.inbound", "reminders.measures"]]


def test_a_package_split_across_layers_is_caught():
    split = LAYERS + [("above", ("reminders.timing.rules",))]
    assert packages_across_layers(source_files(), split) == {"reminders.timing": ["rules", "above"]}
    assert layer_of("reminders.timing.rules", split) == len(LAYERS)
    assert layer_of("reminders.timing.quiet_hours", split) == layer_of("reminders.timing")


# The wrong-way arrows the house had before the outbox got its owner: each must still be caught.
OLD_ARROWS = [
    ("reminders.config", "from reminders.intake.records import check_time_zone\n"),
    ("reminders.inbound.delivery_reports", "from reminders.sending import fall_back_to_email\n"),
    ("reminders.escalations", "from reminders.planning.planner import insert_ignoring_duplicates\n"),
    ("reminders.sending", "from reminders.planning.planner import appointment_key\n"),
    # the two package circles there were: the outbox and planning, measures and inbound
    ("reminders.outbox.resend", "from reminders.planning.planner import plan_visits\n"),
    ("reminders.measures.questionnaires", "from reminders.inbound.replies import handle_inbound\n"),
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
