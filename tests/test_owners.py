"""Owned tables: each is written by one module, and no other module writes it directly.

OWNERS below says who writes what: a visit's status, a patient's consent to texts, check-ins,
escalations, an outbox row's status. The source of every module under reminders/ (migrations
aside) is read with `ast`, and these count as writes, outside the owner:

- making a row: `CheckIn(...)`, `Escalation(...)`, `OutboxMessage(...)` (models whose rows are owned);
- a statement on the table: `update(M)`, `insert(M)`, `delete(M)`, also on `M.__table__`, a name
  bound to it (`table = M.__table__`), or in the method form (`M.__table__.update()`). For a model
  whose rows are owned, any such statement; for one whose columns only are owned, one whose
  `.values(...)` (or `.on_conflict_do_update(set_=...)`) in the same chain names an owned column;
- an assignment (plain, tuple, augmented, annotated) or `setattr(obj, "column", ...)` to an owned
  column through a name that says what it holds: `checkin.note`, `self.checkin.note`,
  `escalation.status`, `patient.sms_opted_out`, `visit.status`, `next_visit.status` (a name, or
  one ending in `_<name>`). `row` and `message` say "outbox row" only in a module that imports
  OutboxMessage.

The tests' own builders (tests/fixtures/*.py, tests/helpers.py) are read the same way: the
records tests start from are made through the owners too, so that a test never begins from a
state the service could not reach.

The owner is a module or a package (every module in it). reminders.models itself may write any
of them: a model's own event hooks keep its rules (an erased patient stays opted out).

What this does not see: a write through a name that says nothing (`x.status = ...`), `setattr`
with a column name held in a variable, a statement built in one place and given its values in
another, or a statement on a model held in a variable (`update(model)` in a loop).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from tests.test_layering import module_name

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "reminders"
TESTS_DIR = Path(__file__).resolve().parent
MODELS_PACKAGE = "reminders.models"


@dataclass(frozen=True)
class Owned:
    model: str
    owner: str
    columns: frozenset[str] | None  # None: every column
    rows: bool  # making a row, inserting or deleting one is the owner's too
    names: tuple[str, ...]  # what a variable holding one is called
    names_with_import: tuple[str, ...] = ()  # also these, in a module that imports the model

    def owns(self, column: str) -> bool:
        return self.columns is None or column in self.columns

    def is_owner(self, module: str) -> bool:
        return any(module == owner or module.startswith(owner + ".") for owner in (self.owner, MODELS_PACKAGE))


OWNERS: tuple[Owned, ...] = (
    Owned("Appointment", "reminders.visits", frozenset({"status", "confirmed_at", "canceled_at"}), rows=False,
          names=("appointment", "visit", "appt")),
    Owned("Patient", "reminders.consent", frozenset({"sms_opted_out", "opted_out_at", "opted_in_at", "opt_out_text"}),
          rows=False, names=("patient",)),
    Owned("CheckIn", "reminders.checkins", None, rows=True, names=("checkin", "check_in")),
    Owned("Escalation", "reminders.escalations", None, rows=True, names=("escalation",)),
    Owned("OutboxMessage", "reminders.outbox", frozenset({"status", "status_reason"}), rows=True,
          names=("outbox_row", "outbox_message"), names_with_import=("row", "message")),
)
BY_MODEL = {owned.model: owned for owned in OWNERS}
STATEMENTS = ("update", "insert", "delete")


@dataclass(frozen=True)
class Write:
    path: str
    line: int
    what: str
    owned: Owned

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what} (write it through {self.owned.owner})"


# ---------------------------------------------------------------- reading a module

def source_files(root: Path = PACKAGE_DIR) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))
            if "migrations" not in path.relative_to(root).parts}


def _held_name(node: ast.expr) -> str | None:
    """What the object written through is called: `checkin` in `self.checkin.note`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _says(name: str | None, names: tuple[str, ...]) -> bool:
    return name is not None and any(name == n or name.endswith("_" + n) for n in names)


def _targets(node: ast.expr):
    if isinstance(node, (ast.Tuple, ast.List)):
        for element in node.elts:
            yield from _targets(element)
    elif isinstance(node, ast.Starred):
        yield from _targets(node.value)
    else:
        yield node


class _Module:
    def __init__(self, module: str, tree: ast.Module, path: str):
        self.module, self.tree, self.path = module, tree, path
        self.imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                         for alias in node.names}
        self.verbs = {alias.asname or alias.name: alias.name for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom) for alias in node.names if alias.name in STATEMENTS}
        self.tables = self._table_names()

    def _table_names(self) -> dict[str, str]:
        """Names bound to a model's table: `table = Appointment.__table__` (tuples too)."""
        found = {}
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                pairs = (zip(target.elts, node.value.elts)
                         if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                         else [(target, node.value)])
                for name, value in pairs:
                    model = self._model_of(value, tables={})
                    if isinstance(name, ast.Name) and model is not None and isinstance(value, ast.Attribute):
                        found[name.id] = model
        return found

    def _model_of(self, node: ast.expr, tables: dict[str, str] | None = None) -> str | None:
        """The owned model a statement's table names: `M`, `M.__table__`, or a name bound to it."""
        tables = self.tables if tables is None else tables
        if isinstance(node, ast.Attribute) and node.attr == "__table__":
            node = node.value
        elif isinstance(node, ast.Name) and node.id in tables:
            return tables[node.id]
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        return name if name in BY_MODEL else None

    def _names_for(self, owned: Owned) -> tuple[str, ...]:
        return owned.names + (owned.names_with_import if owned.model in self.imported else ())

    def writes(self) -> list[Write]:
        found = []
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if isinstance(node, ast.AnnAssign) and node.value is None:
                    continue
                for target in (t for each in targets for t in _targets(each)):
                    if isinstance(target, ast.Attribute):
                        found += self._column_write(node, target.value, target.attr, "assigns")
            elif isinstance(node, ast.Call):
                found += self._call(node)
        return sorted((w for w in found if not w.owned.is_owner(self.module)), key=lambda w: w.line)

    def _column_write(self, node: ast.AST, holder: ast.expr, column: str, how: str) -> list[Write]:
        name = _held_name(holder)
        return [self._write(node, f"{how} {name}.{column}", owned) for owned in OWNERS
                if owned.owns(column) and _says(name, self._names_for(owned))]

    def _call(self, node: ast.Call) -> list[Write]:
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called == "setattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str):
            return self._column_write(node, node.args[0], node.args[1].value, "setattr")
        if called in BY_MODEL and BY_MODEL[called].rows:
            return [self._write(node, f"makes a {called} row", BY_MODEL[called])]
        verb, model = self._statement(node)
        if model is None:
            return []
        owned = BY_MODEL[model]
        if owned.rows and verb in ("insert", "delete") or owned.columns is None:
            return [self._write(node, f"{verb}({model})", owned)]
        columns = sorted(c for c in self._values_of(node) if owned.owns(c))
        return [self._write(node, f"{verb}({model}) sets {', '.join(columns)}", owned)] if columns else []

    def _statement(self, node: ast.Call) -> tuple[str | None, str | None]:
        """`update(M)` and the like, or `M.__table__.update()`: the verb and the owned model."""
        func = node.func
        if isinstance(func, ast.Name) and func.id in self.verbs and node.args:
            return self.verbs[func.id], self._model_of(node.args[0])
        if isinstance(func, ast.Attribute) and func.attr in STATEMENTS:
            if node.args:  # sa.update(M)
                return func.attr, self._model_of(node.args[0])
            return func.attr, self._model_of(func.value)  # M.__table__.update()
        return None, None

    def _values_of(self, statement: ast.Call) -> set[str]:
        """The columns given by `.values(...)` (or an upsert's `set_`) chained on this statement."""
        columns = set()
        for node in ast.walk(self.tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("values", "on_conflict_do_update") and _rooted_at(node, statement)):
                continue
            columns |= {k.arg for k in node.keywords if k.arg and k.arg != "set_"}
            given = [*node.args, *(k.value for k in node.keywords if k.arg == "set_")]
            columns |= {key.value for d in given if isinstance(d, ast.Dict)
                        for key in d.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)}
        return columns

    def _write(self, node: ast.AST, what: str, owned: Owned) -> Write:
        return Write(self.path, node.lineno, what, owned)


def _rooted_at(call: ast.Call, statement: ast.Call) -> bool:
    node: ast.expr = call.func.value
    while True:
        if node is statement:
            return True
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            node = node.value
        else:
            return False


def writes_in(module: str, source: str, path: str = "") -> list[Write]:
    return _Module(module, ast.parse(source), path or module).writes()


@lru_cache(maxsize=1)
def all_writes() -> tuple[Write, ...]:
    found = []
    for module, path in source_files().items():
        found += writes_in(module, path.read_text(), str(path.relative_to(PACKAGE_DIR.parent)))
    return tuple(found)


def builder_files() -> dict[str, Path]:
    """The tests' builders: tests/fixtures/*.py and tests/helpers.py, by module name."""
    paths = [*sorted((TESTS_DIR / "fixtures").glob("*.py")), TESTS_DIR / "helpers.py"]
    return {module_name(path, TESTS_DIR): path for path in paths}


# ---------------------------------------------------------------- the house as it is

@pytest.mark.parametrize("owned", OWNERS, ids=[owned.model for owned in OWNERS])
def test_only_the_owner_writes(owned):
    offenders = [w for w in all_writes() if w.owned is owned]
    assert not offenders, f"{owned.model} is written outside {owned.owner}:\n" + "\n".join(map(str, offenders))


def test_the_tests_build_their_records_through_the_owners():
    found = [w for module, path in builder_files().items()
             for w in writes_in(module, path.read_text(), str(path.relative_to(TESTS_DIR.parent)))]
    assert not found, "a builder writes an owned table by hand:\n" + "\n".join(map(str, found))


def test_the_builders_are_read_and_a_hand_written_row_there_is_caught():
    assert {"tests.helpers", "tests.fixtures.staff"} <= set(builder_files())
    by_hand = ("from reminders.models import OutboxMessage\n"
               "def add_outbox(session, row):\n"
               "    session.add(OutboxMessage(status='sent'))\n"
               "    row.status = 'delivered'\n")
    found = writes_in("tests.helpers", by_hand, "tests/helpers.py")
    assert [(w.line, w.what, w.owned.owner) for w in found] == [
        (3, "makes a OutboxMessage row", "reminders.outbox"), (4, "assigns row.status", "reminders.outbox")]


@pytest.mark.parametrize("owned", OWNERS, ids=[owned.model for owned in OWNERS])
def test_every_owner_exists(owned):
    assert owned.owner in source_files(), f"{owned.model}'s owner {owned.owner} is not a module under reminders/"


# ---------------------------------------------------------------- the check itself can fail

FORBIDDEN = """\
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from reminders.models import CheckIn, OutboxMessage, Appointment

def go(session, checkin, patient, visit, row, other, now):
    session.add(CheckIn(patient_id=1))
    checkin.note += "more"
    patient.sms_opted_out, patient.opted_out_at = True, now
    self_visit = visit
    self_visit.status = "confirmed"
    setattr(row, "status", "sent")
    session.execute(update(Appointment).where(Appointment.id == 1).values(canceled_at=now))
    session.execute(pg_insert(CheckIn.__table__).values(score=3))
    table = OutboxMessage.__table__
    session.execute(table.update().where(table.c.id == 1).values({"status_reason": "x"}))
    other.status = "sent"
    patient.first_name = "Maya"
    session.execute(update(Appointment).values(needs_planning=True))
    session.execute(update(OutboxMessage).values(body=None))
"""


def test_forbidden_writes_are_caught_with_their_line_and_owner():
    found = writes_in("reminders.web.staff.visits", FORBIDDEN, "reminders/web/staff/visits.py")
    assert [(w.line, w.what, w.owned.owner) for w in found] == [
        (6, "makes a CheckIn row", "reminders.checkins"),
        (7, "assigns checkin.note", "reminders.checkins"),
        (8, "assigns patient.sms_opted_out", "reminders.consent"),
        (8, "assigns patient.opted_out_at", "reminders.consent"),
        (10, "assigns self_visit.status", "reminders.visits"),
        (11, "setattr row.status", "reminders.outbox"),
        (12, "update(Appointment) sets canceled_at", "reminders.visits"),
        (13, "insert(CheckIn)", "reminders.checkins"),
        (15, "update(OutboxMessage) sets status_reason", "reminders.outbox"),
    ]
    assert str(found[0]) == ("reminders/web/staff/visits.py:6: makes a CheckIn row "
                             "(write it through reminders.checkins)")


def test_row_says_outbox_only_where_the_outbox_is_imported():
    source = "def go(row):\n    row.status = 'done'\n"
    assert writes_in("reminders.intake.import_jobs", source) == []
    found = writes_in("reminders.sending", "from reminders.models import OutboxMessage\n" + source)
    assert [w.owned.model for w in found] == ["OutboxMessage"]


def test_an_owner_may_write_its_own():
    assert writes_in("reminders.checkins", "def go(session, checkin):\n    session.add(CheckIn())\n"
                     "    checkin.status = 'answered'\n") == []
    assert writes_in("reminders.outbox.moves", "def go(row):\n    row.status = 'sent'\n") == []
    assert writes_in("reminders.models.patients", "def go(patient):\n    patient.sms_opted_out = True\n") == []


@pytest.mark.parametrize("owner_module", ["reminders.consent", "reminders.checkins"])
def test_the_owners_own_writes_are_seen_from_anywhere_else(owner_module):
    """The owner's file passes as itself; the same file under another module's name is caught,
    so the check does see the writes it lets the owner make."""
    path = source_files()[owner_module]
    source = path.read_text()
    assert writes_in(owner_module, source) == []
    assert writes_in("reminders.web.staff.patients", source), f"no write found in {path}"
