"""Message templates: the files in templates/ are the defaults; staff versions in the database win.

Rendering happens in Jinja2's sandbox with StrictUndefined, so a template can neither reach
Python internals nor silently print an empty name. The sandbox also has a budget: a render is
cut off after RENDER_TIME_LIMIT seconds or MAX_OUTPUT characters (LimitedEnvironment), so a
staff template with a runaway loop costs one message a fraction of a second, not a worker.

When a staff version fails while a message is rendered, the default file is rendered instead
(the patient still gets a correct message) and the failure is kept on the store for the caller
to flag the version to admins (`flag_failures`).
"""
from __future__ import annotations

import dis
import functools
import inspect
import logging
import math
import re
import sys
import threading
import time
import traceback
import types
from collections.abc import ItemsView, KeysView, Mapping, Set as AbstractSet, ValuesView
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FunctionLoader, StrictUndefined, Template, TemplateError, TemplateSyntaxError
from jinja2.bccache import BytecodeCache
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter, SecurityError
from jinja2.utils import Namespace, generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup
from sqlalchemy import case, event, func, select, update
from sqlalchemy.orm import Session

from reminders.channels.base import ChannelSpec
from reminders.channels.segments import gsm_safe, sms_length
from reminders.models import Appointment, Patient, TemplateVersion
from reminders.models.outbox import TEXT_CHANNELS
from reminders.models.patients import DEFAULT_LANGUAGE
from reminders.models.replies import checkin_kind
from reminders.preparation import Preparation, clock, date_words, visit_times

log = logging.getLogger(__name__)

RENDER_TIME_LIMIT = 0.2  # seconds for one render of one template
MAX_OUTPUT = 100_000  # characters one render may produce (a long HTML email is about 10,000)
_CHECK_EVERY = 256  # trace events between two looks at the clock

SUFFIXES = {"sms": ".sms.j2", "whatsapp": ".whatsapp.j2", "subject": ".subject.j2", "text": ".email.txt.j2",
            "html": ".email.html.j2"}


@dataclass(frozen=True)
class TemplateProblem:
    name: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "template"
        return f"{self.name}, {where}: {self.reason}"


class TemplateStore:
    """Where template sources come from: the clinic's active staff versions, else the files.

    Stores are cheap to make (one per batch of sends, one per inbound text): what they read is
    shared by every store of the process on the same database (`_SharedTemplates`), checked with
    one small query when a store first needs it, so a staff edit is picked up by the next batch
    while the compiled templates are reused until then."""

    def __init__(self, templates_dir: Path, session: Session | None = None):
        self.templates_dir = Path(templates_dir)
        self.session = session
        self._shared: _SharedTemplates | None = None
        self._own_environment: LimitedEnvironment | None = None
        self.failures: dict[str, str] = {}  # staff versions that failed here: name -> reason
        self.fall_back = True  # a failing staff version gives way to the default file (not in previews)

    def shared(self) -> "_SharedTemplates":
        if self._shared is None:
            self._shared = _shared_templates(self)
        return self._shared

    @property
    def environment(self) -> "LimitedEnvironment":
        """One sandbox per version of the clinic's templates: each template is compiled once.
        A store with sources of its own (a preview's candidate text) gets a sandbox of its own."""
        if type(self).source is TemplateStore.source:
            return self.shared().environment
        if self._own_environment is None:
            self._own_environment = environment(self)
        return self._own_environment

    def language_dirs(self) -> list[Path]:
        return [p for p in self.templates_dir.iterdir() if p.is_dir() and len(p.name) == 2] if self.templates_dir.is_dir() else []

    @property
    def default_environment(self) -> "LimitedEnvironment":
        """The files in templates/ only: what a failed staff version falls back to."""
        return self.shared().default_environment

    def default_names(self) -> list[str]:
        return sorted(p.name for p in self.templates_dir.glob("*.j2"))

    def all_names(self) -> list[str]:
        """Every default template, those in a language's folder too ("es/welcome.sms.j2")."""
        return self.default_names() + sorted(
            f"{folder.name}/{p.name}" for folder in self.language_dirs() for p in folder.glob("*.j2"))

    def default_path(self, name: str) -> Path | None:
        path = self.templates_dir / name
        folder = path.parent
        # templates/ itself or a language's folder in it ("es"), nothing else (no "..").
        in_place = folder == self.templates_dir or (
            folder.parent == self.templates_dir and len(folder.name) == 2 and folder.name.isalpha())
        if not in_place or not path.is_file():
            return None
        return path

    def default_source(self, name: str) -> str | None:
        """A file in templates/, or in a language's folder there ("es/reply_crisis.sms.j2")."""
        path = self.default_path(name)
        return path.read_text(encoding="utf-8") if path is not None else None

    def overrides(self) -> dict[str, str]:
        return self.shared().overrides

    def source(self, name: str) -> str | None:
        return self.overrides().get(name) or self.default_source(name)

    def exists(self, name: str) -> bool:
        return name in self.overrides() or self.default_path(name) is not None


def _read_overrides(session: Session | None) -> dict[str, str]:
    overrides: dict[str, str] = {}
    if session is None:
        return overrides
    rows = session.execute(
        select(TemplateVersion.name, TemplateVersion.source, TemplateVersion.failed_at)
        .where(TemplateVersion.active).order_by(TemplateVersion.created_at, TemplateVersion.id)
    )
    for name, source, failed_at in rows:  # the newest active version wins
        overrides[name] = source
        if failed_at is not None:
            # It failed on a send: the default goes until an admin saves a fixed version
            # (each send would otherwise spend its render budget on it again).
            del overrides[name]
    return overrides


def versions_marker(session: Session | None) -> tuple | None:
    """What changes whenever the clinic's templates do: a version saved (a new id), switched on
    or off (the sum of active ids), or flagged as failed. One small aggregate query."""
    if session is None:
        return None
    return tuple(session.execute(select(
        func.count(TemplateVersion.id), func.max(TemplateVersion.id),
        func.sum(case((TemplateVersion.active, TemplateVersion.id), else_=0)),
        func.count(TemplateVersion.failed_at),
    )).one())


class _SharedTemplates:
    """The clinic's templates as one version of the database has them, compiled once."""

    def __init__(self, store: TemplateStore, marker: tuple | None):
        self.marker = marker
        self.checked_at = time.monotonic()
        self.templates_dir = store.templates_dir
        self.overrides = _read_overrides(store.session)
        # The loaders read through a store of their own, without a session (the overrides are read).
        reader = TemplateStore(store.templates_dir)
        reader._shared = self
        self.environment = environment(reader)
        self.default_environment = environment(_DefaultsOnly(reader))


# A busy webhook need not ask the database on every text: the versions are looked at again after
# this long, and at once after any change made through this process (`_template_versions_changed`).
# Another process (a worker) picks a staff edit up within this many seconds.
VERSIONS_CHECK_SECONDS = 2.0
_shared_lock = threading.Lock()
_shared_by_database: dict[tuple[str, str], _SharedTemplates] = {}


def _shared_templates(store: TemplateStore) -> _SharedTemplates:
    database = str(store.session.get_bind().url) if store.session is not None else ""
    key = (str(store.templates_dir), database)
    shared = _shared_by_database.get(key)
    if shared is not None and time.monotonic() - shared.checked_at < VERSIONS_CHECK_SECONDS:
        return shared
    marker = versions_marker(store.session)
    if shared is not None and shared.marker == marker:
        shared.checked_at = time.monotonic()
    else:
        shared = _SharedTemplates(store, marker)
        with _shared_lock:
            if len(_shared_by_database) > 50:  # tests make a database each; a clinic has one
                _shared_by_database.clear()
            _shared_by_database[key] = shared
    return shared


@event.listens_for(Session, "do_orm_execute")
def _template_versions_changed(state) -> None:
    """An UPDATE or DELETE of template versions in this process (a save, a revert, a failure
    flagged): the next store looks at the versions again instead of trusting the last look."""
    if (state.is_update or state.is_delete or state.is_insert) and state.bind_mapper is not None \
            and state.bind_mapper.class_ is TemplateVersion:
        _versions_look_again()


@event.listens_for(TemplateVersion, "after_insert")
@event.listens_for(TemplateVersion, "after_update")
@event.listens_for(TemplateVersion, "after_delete")
def _template_version_flushed(_mapper, _connection, _target) -> None:
    _versions_look_again()


def _versions_look_again() -> None:
    for shared in list(_shared_by_database.values()):
        shared.checked_at = float("-inf")


def forget_compiled_templates() -> None:
    """Drop every shared template (tests that rewrite files under a running process)."""
    with _shared_lock:
        _shared_by_database.clear()


class RenderLimitExceeded(SecurityError):
    """A render ran out of time or produced too much; the template is at fault, not the data."""


class _Budget:
    """A deadline watched from a trace function: it sees every line the template's code runs, so
    even a loop that calls nothing and prints nothing is stopped. (sys.settrace is per thread.)"""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.events = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(f"the template took longer than {self.seconds * 1000:.0f} ms to render "
                                      "(a loop or macro that runs too long?)")

    def _local(self, frame, event, arg):
        self.events += 1
        if self.events % _CHECK_EVERY == 0:
            self.check()
        return self._local

    def _global(self, frame, event, arg):
        # Only the template's own code is watched (its loops run there); raising anywhere else,
        # say in a garbage-collector callback, would break code that is not the template's.
        return self._local if frame.f_code.co_filename == "<template>" else None

    def run(self, chunks) -> str:
        """Collect the output with the template's own lines watched."""
        previous = sys.gettrace()
        sys.settrace(self._global)
        try:
            return self.collect(chunks)
        finally:
            sys.settrace(previous)

    def collect(self, chunks) -> str:
        out, size = [], 0
        for chunk in chunks:
            size += len(chunk)
            if size > MAX_OUTPUT:
                raise RenderLimitExceeded(f"the template produced more than {MAX_OUTPUT} characters")
            out.append(chunk)
        return "".join(out)


_current = threading.local()  # the budget of the render running in this thread, for the call hook


class LimitedTemplate(Template):
    """Every render through a LimitedEnvironment has a time and size budget.

    Only a template with a loop can run long without calling anything, so only such a template
    is watched line by line (sys.settrace costs a few times the render); calls (macros, methods)
    check the clock in LimitedEnvironment.call, and output is counted chunk by chunk."""

    def render(self, *args, **kwargs) -> str:
        budget = _Budget(self.environment.time_limit)
        outer, _current.budget = getattr(_current, "budget", None), budget
        try:
            chunks = self.generate(*args, **kwargs)
            watch = _needs_watching(self.root_render_func.__code__) or any(
                _needs_watching(block.__code__) for block in self.blocks.values())
            return budget.run(chunks) if watch else budget.collect(chunks)
        finally:
            _current.budget = outer


_OTHER_TEMPLATES = {"get_template", "select_template", "get_or_select_template"}


@functools.lru_cache(maxsize=1024)
def _needs_watching(code) -> bool:
    """Whether compiled template code (or a macro inside it) has a loop, or brings in another
    template (include, import, extends), whose loops would run in it."""
    if _OTHER_TEMPLATES & set(code.co_names):
        return True
    for instruction in dis.get_instructions(code):
        if instruction.opname.startswith("JUMP_BACKWARD") or instruction.opname == "FOR_ITER":
            return True
    return any(_needs_watching(const) for const in code.co_consts if hasattr(const, "co_code"))


_NUMBER = re.compile(r"\d+")
# A printf conversion: %s, %(name)s, %-8.3f, %*d, %%
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_MAX_INT_BITS = 1024  # a product past this is no count, date or dose; it only costs time
_TEXTS = (str, bytes, bytearray)
_SEQUENCES = (list, tuple, AbstractSet, KeysView, ValuesView, ItemsView)
_CONTEXTS = (Context, EvalContext, Environment)


def _too_big(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT


def _check_arguments(what: str, args, kwargs) -> None:
    for value in (*args, *kwargs.values()):
        if _too_big(value):
            raise RenderLimitExceeded(f"{what} was given {value}: numbers over {MAX_OUTPUT} are not allowed here")


def _check_result(what: str, value):
    if isinstance(value, (*_TEXTS, list, tuple)) and len(value) > MAX_OUTPUT:
        raise RenderLimitExceeded(f"{what} made something longer than {MAX_OUTPUT}")
    return value


def _refuse_over(what: str, size: int) -> None:
    """Refuse, before it is built, a result of `size` characters (or items) over MAX_OUTPUT."""
    if size > MAX_OUTPUT:
        raise RenderLimitExceeded(f"{what} would make something longer than {MAX_OUTPUT} characters")


def _size(value, text: bool = True) -> int:
    """How big a value is, counted without building anything from it, and only until past MAX_OUTPUT.

    text=True: about how many characters str(value) has. A list holding the same long list a
    thousand times prints it a thousand times, so nested values count each time they appear: a
    value made in a few small steps whose text would take gigabytes is found out in at most
    MAX_OUTPUT steps. text=False: how many items it holds, nested ones included (what '*' repeats
    and `sum` joins)."""
    if isinstance(value, _TEXTS):
        return len(value)
    budget = getattr(_current, "budget", None)
    size, steps, stack = 0, 0, [value]
    while stack and size <= MAX_OUTPUT:
        item = stack.pop()
        size += 1  # the item (or the comma after it)
        steps += 1
        if budget is not None and not steps & 4095:
            budget.check()  # a long measure is render time too
        if isinstance(item, (int, float)) or item is None:  # (concrete types first: they are most)
            if text:
                size += item.bit_length() * 3 // 10 + 1 if isinstance(item, int) else 24
        elif isinstance(item, _TEXTS):
            size += len(item) + 2 if text else 0
        elif isinstance(item, (list, tuple)) or (not isinstance(item, dict) and isinstance(item, _SEQUENCES)):
            size += 2 if text else 0
            stack.extend(item)
        elif isinstance(item, Mapping):
            size += 3 * len(item) if text else 0
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Namespace):
            stack.append(item._Namespace__attrs)
        elif text:
            size += 24  # an object that prints as its name
    return size if text else size - 1  # (the value itself is no item of its own)


def _printf_size(fmt: str, args) -> int:
    """About how long `fmt % args` would be: the format's text, and for each conversion the widest
    of its width, its precision and the text of the value it converts."""
    size = len(fmt)
    if isinstance(args, Mapping):  # "%(name)s": any conversion may print any value
        widest = max((len(n) > 6 and MAX_OUTPUT + 1 or int(n) for n in _NUMBER.findall(fmt)), default=0)
        return size + fmt.count("%") * (_size(args) + widest)
    values, index = (args if isinstance(args, tuple) else (args,)), 0
    for match in _PRINTF.finditer(fmt):
        width, precision, kind = match.groups()
        if kind == "%":
            continue
        widest = 0
        for part in (width, precision):
            if part == "*":
                star = values[index] if index < len(values) else 0
                widest, index = max(widest, abs(star) if isinstance(star, int) else 0), index + 1
            elif part:
                widest = max(widest, MAX_OUTPUT + 1 if len(part) > 6 else int(part))
        value = values[index] if index < len(values) else ""
        index += 1
        size += max(widest, _size(value))
        if size > MAX_OUTPUT:
            break
    return size


def _check_text_method(text, name: str, args: tuple, kwargs: dict) -> tuple:
    """Refuse a method of a text (str or bytes) whose result would pass MAX_OUTPUT, before it runs.
    `join` is given its items as a list (to measure them first); wrong arguments are left for the
    method itself to refuse."""
    what = f"'{name}'"
    try:
        if name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            found = text.count(old) if len(old) else len(text) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            _refuse_over(what, len(text) + found * (len(new) - len(old)))
        elif name == "join" and len(args) == 1:
            items = list(args[0])
            size = len(text) * max(len(items) - 1, 0)
            for item in items:
                if size > MAX_OUTPUT:
                    break
                size += len(item) if isinstance(item, _TEXTS) else 0
            _refuse_over(what, size)
            return (items,)
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            tabs = text.count("\t" if isinstance(text, str) else b"\t")
            _refuse_over(what, len(text) + tabs * max(tabsize, 0))
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, _TEXTS)), default=1)
            _refuse_over(what, len(text) * max(longest, 1))
    except TypeError:
        pass  # not arguments the method takes: it says so itself
    return args


_LIPSUM = inspect.signature(generate_lorem_ipsum)


def _check_lipsum(args: tuple, kwargs: dict) -> None:
    try:
        given = _LIPSUM.bind(*args, **kwargs)
    except TypeError:
        return
    given.apply_defaults()
    paragraphs, words = given.arguments["n"], given.arguments["max"]
    if isinstance(paragraphs, int) and isinstance(words, int):
        _refuse_over("lipsum", paragraphs * words * 12)  # about 12 characters a word


# Filters that pick, count or reorder what they are given; every other filter makes text of it.
_PICKING_FILTERS = frozenset({
    "abs", "attr", "batch", "count", "d", "default", "dictsort", "first", "float", "groupby", "int", "items", "last",
    "length", "list", "map", "max", "min", "random", "reject", "rejectattr", "reverse", "round", "select",
    "selectattr", "slice", "sort", "unique", "join", "sum",  # (join and sum: measured below)
})


def _check_filter(name: str, signature: inspect.Signature | None, args: tuple, kwargs: dict) -> tuple:
    """Refuse a filter whose result would pass MAX_OUTPUT, before it runs. The sequence given to
    `join` or `sum` is made a list first (to be measured), and that list is what the filter gets."""
    what = f"the filter '{name}'"
    lead = 1 if args and isinstance(args[0], _CONTEXTS) else 0  # jinja's context, eval context or environment
    if name in ("join", "sum") and len(args) > lead:
        try:
            args = (*args[:lead], list(args[lead]), *args[lead + 1:])
        except TypeError:
            return args
    if name not in _PICKING_FILTERS:
        for value in (*args[lead:], *kwargs.values()):
            if not isinstance(value, (str, int, float, type(None))):
                _refuse_over(what, _size(value))
    try:
        given = signature.bind(*args, **kwargs) if signature is not None else None
    except TypeError:
        return args  # the filter says what is wrong
    if given is None:
        return args
    given.apply_defaults()
    a = given.arguments
    if name == "join":
        _refuse_over(what, _size(a["d"]))
        size = len(str(a["d"])) * max(len(a["value"]) - 1, 0)
        for item in a["value"]:
            size += _size(item)
            if size > MAX_OUTPUT:
                break
        _refuse_over(what, size)
    elif name == "sum":
        size = _size(a["start"], text=False)
        for item in a["iterable"]:
            size += _size(item, text=False)
            if size > MAX_OUTPUT:
                break
        _refuse_over(what, size)
    elif name == "tojson" and isinstance(a["indent"], int):
        _refuse_over(what, _size(a["value"]) * (1 + max(a["indent"], 0)))
    elif name in ("replace", "indent", "wordwrap", "urlize", "format"):
        text = str(next(iter(v for k, v in a.items() if k not in ("eval_ctx", "environment"))))  # measured above
        if name == "replace":
            old, new, count = str(a["old"]), str(a["new"]), a["count"]
            found = text.count(old) if old else len(text) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            _refuse_over(what, len(text) + found * (len(new) - len(old)))
        elif name == "indent" and isinstance(a["width"], (int, str)):
            pad = len(a["width"]) if isinstance(a["width"], str) else a["width"]
            _refuse_over(what, len(text) + (text.count("\n") + 1) * pad)
        elif name == "wordwrap" and isinstance(a["width"], int):
            wrap = len(str(a["wrapstring"])) if a["wrapstring"] is not None else 2
            lines = 2 * len(text) // max(a["width"], 1) + text.count("\n") + 2
            _refuse_over(what, len(text) + lines * wrap)
        elif name == "urlize":
            per_link = len(str(a["target"] or "")) + len(str(a["rel"] or "")) + 100
            _refuse_over(what, 3 * len(text) + len(text.split()) * per_link)
        elif name == "format":
            _refuse_over(what, _printf_size(text, a["kwargs"] or a["args"]))
    return args


def _guarded_filter(name: str, function):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None

    @functools.wraps(function)  # keeps jinja's pass_context/pass_eval_context marks
    def guarded(*args, **kwargs):
        _check_arguments(f"the filter '{name}'", args, kwargs)
        args = _check_filter(name, signature, args, kwargs)
        return _check_result(f"the filter '{name}'", function(*args, **kwargs))

    return guarded


@functools.lru_cache(maxsize=None)
def _guarded_filters_once(items: tuple) -> tuple:
    return tuple((name, _guarded_filter(name, function)) for name, function in items)


def _guarded_filters(filters: dict) -> tuple:
    """Jinja's filters wrapped once per process (an environment is made per pass, or per send)."""
    return _guarded_filters_once(tuple(filters.items()))


def _measured_output(value):
    """`{{ value }}`: a value whose text would pass MAX_OUTPUT is refused before it is made."""
    if not isinstance(value, str):
        _refuse_over("printing a value", _size(value))
    return value


class _MeasuredFormatter(SandboxedFormatter):
    """str.format in the sandbox, adding up what its fields make: "{0}{0}{0}...".format(long_text)
    or many "{:>99999}" fields are refused before the field that would pass MAX_OUTPUT is made."""

    def __init__(self, env, **kwargs):
        super().__init__(env, **kwargs)
        self.made = 0

    def convert_field(self, value, conversion):
        if conversion is not None:  # !r and !a escape: up to 10 characters for one
            _refuse_over("'format'", self.made + _size(value) * (10 if conversion == "a" else 4))
        return super().convert_field(value, conversion)

    def format_field(self, value, format_spec):
        widest = max((MAX_OUTPUT + 1 if len(n) > 6 else int(n) for n in _NUMBER.findall(format_spec)), default=0)
        self.made += max(_size(value), widest)
        _refuse_over("'format'", self.made)
        return super().format_field(value, format_spec)


class _MeasuredEscapeFormatter(_MeasuredFormatter, EscapeFormatter):
    """The same for Markup.format (HTML emails): fields are escaped as jinja's own formatter does."""


class _MeasuringCodeGenerator(CodeGenerator):
    """Jinja's code generator with one change: the parts of `a ~ b` go through
    environment.measured_parts before they are made text (the same as `{{ }}` output does
    through environment.finalize)."""

    @optimizeconst
    def visit_Concat(self, node, frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"{join}(environment.measured_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's sandbox (the immutable one: no list.append or dict.update to grow a value in a
    loop) with a budget: time (see _Budget), output size, and operators or calls that would build
    a huge value in one step. What a step would build is measured before it runs, never after:
    "x" * 10**9, ("a"*20000).replace("a", "a"*20000), a join or a format of a long text many
    times, "x"|center(10**9), 9**9**9, a list printed that holds the same long list many times."""

    template_class = LimitedTemplate
    code_generator_class = _MeasuringCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "//", "+"})

    def __init__(self, *args, time_limit: float = RENDER_TIME_LIMIT, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_limit = time_limit
        self.filters = dict(_guarded_filters(self.filters))
        self.finalize = _measured_output

    @staticmethod
    def measured_parts(parts: tuple) -> tuple:
        size = 0
        for part in parts:
            size += _size(part)
            _refuse_over("'~'", size)
        return parts

    def call_binop(self, context, operator: str, left, right):
        if operator == "**":
            if isinstance(left, (int, float)) and isinstance(right, (int, float)) and abs(left) > 1 \
                    and right * math.log2(abs(left)) > 64:
                raise RenderLimitExceeded("a power that large is not allowed")
        elif operator == "*":
            for value, times in ((left, right), (right, left)):
                if isinstance(value, (*_TEXTS, list, tuple)) and isinstance(times, int) \
                        and _size(value, text=False) * times > MAX_OUTPUT:
                    raise RenderLimitExceeded(f"a repetition longer than {MAX_OUTPUT} is not allowed")
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > _MAX_INT_BITS:
                raise RenderLimitExceeded("a number that large is not allowed")
        elif operator == "%" and isinstance(left, str):
            _refuse_over("'%'", _printf_size(left, right))
        result = super().call_binop(context, operator, left, right)
        return _check_result(f"'{operator}'", result)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's own signature
        budget = getattr(_current, "budget", None)
        if budget is not None:
            budget.check()  # macros calling themselves need no loop to run for ever
        _check_arguments("a call", args, kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, _TEXTS):
            args = _check_text_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        elif __obj is generate_lorem_ipsum:
            _check_lipsum(args, kwargs)
        return _check_result("a call", super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value):
        """Jinja's own wrapper of str.format and format_map, with a formatter that measures."""
        if not isinstance(value, (types.MethodType, types.BuiltinMethodType)) \
                or value.__name__ not in ("format", "format_map") or not isinstance(value.__self__, str):
            return None
        text, is_format_map = value.__self__, value.__name__ == "format_map"

        def wrapper(*args, **kwargs):
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                args, kwargs = (), args[0]
            formatter = (_MeasuredEscapeFormatter(self, escape=text.escape) if isinstance(text, Markup)
                         else _MeasuredFormatter(self))
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(wrapper, value)


class _DefaultsOnly:
    def __init__(self, store: TemplateStore):
        self.source = store.default_source
        self.default_path = store.default_path
        self.overrides = dict


def _autoescape(name: str | None) -> bool:
    return bool(name and name.endswith(".html.j2"))


class _CompiledOnce(BytecodeCache):
    """Compiled templates shared by every store in the process (a store is made per send). Jinja
    checks the source's checksum on load, so an edited template is compiled again."""

    def __init__(self):
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        with self._lock:
            if len(self._code) > 2000:  # defaults and staff versions: a few dozen names in practice
                self._code.clear()
            self._code[bucket.key] = bucket.bytecode_to_string()


_compiled = _CompiledOnce()


def environment(store: TemplateStore, time_limit: float = RENDER_TIME_LIMIT) -> LimitedEnvironment:
    return LimitedEnvironment(
        bytecode_cache=_compiled,
        loader=FunctionLoader(functools.partial(_load, store)),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        time_limit=time_limit,
    )


def _load(store, name: str):
    """A template's source for jinja, with how to tell it is still current: a staff version is
    (the store is replaced when the versions change); a file is while its mtime is the same, so
    a file edited on disk is compiled again. (No file name: the template's code stays
    "<template>", which the render budget and the failure's line number rely on.)"""
    source = store.source(name)
    if source is None:
        return None
    path = None if store.overrides().get(name) else store.default_path(name)
    if path is None:
        return source, None, lambda: True
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return source, None, lambda: False

    def uptodate() -> bool:
        try:
            return path.stat().st_mtime_ns == mtime
        except OSError:
            return False

    return source, None, uptodate


def localized(store: TemplateStore, name: str, language: str | None) -> str:
    """The template to render for a patient: `<language>/<name>` when the clinic or the shipped
    templates have one in the patient's language, else `name` (English, the default)."""
    if language and language != DEFAULT_LANGUAGE:
        candidate = f"{language}/{name}"
        if store.exists(candidate):
            return candidate
    return name


def message_templates(store: TemplateStore, template: str, language: str | None,
                      spec: ChannelSpec) -> dict[str, str | None]:
    """The template of each part of one message in the patient's language where there is one:
    `body` for a text channel (its own template, else its `template_fallback`'s); `subject`,
    `text` and `html` for a channel with a subject. The HTML part goes only in the language of the
    text part (an English HTML beside a Spanish text would say something else), and only when it
    exists."""
    if not spec.has_subject:
        return {"body": text_template(store, template, spec, language)}
    names: dict[str, str | None] = {part: localized(store, template + SUFFIXES[part], language)
                                    for part in ("subject", "text")}
    folder = names["text"][: -len(template + SUFFIXES["text"])]
    html = folder + template + SUFFIXES["html"]
    names["html"] = html if store.exists(html) else None
    return names


def text_template(store: TemplateStore, template: str, spec, language: str | None) -> str:
    """The template a text channel's message is rendered from: the channel's own
    (`<template>.<suffix>.j2`), else that of its spec's `template_fallback` (a rule with no
    WhatsApp wording of its own uses the SMS text). The patient's language comes first: a Spanish
    SMS text beats an English WhatsApp one."""
    names = [f"{template}.{suffix}.j2" for suffix in (spec.template_suffix, spec.template_fallback) if suffix]
    if language and language != DEFAULT_LANGUAGE:
        for name in names:
            if store.exists(f"{language}/{name}"):
                return f"{language}/{name}"
    return next((name for name in names if store.exists(name)), names[-1])


def render(store: TemplateStore, name: str, context: dict, keep_break: bool = False) -> str:
    """Render a template; when the clinic's own version fails, the default file is used instead.

    A text template's PART_BREAK line is taken out, or with `keep_break` left in for `text_parts`
    to split the text there when it does not fit one text."""
    try:
        text = store.environment.get_template(name).render(**context)
    except Exception as exc:  # noqa: BLE001 - any failure of a staff version falls back
        if not store.fall_back or name not in store.overrides() or store.default_source(name) is None:
            raise
        store.failures[name] = _failure_reason(exc)
        log.error("template %s: the clinic's version failed (%s); the default file was used for this message",
                  name, store.failures[name])
        text = store.default_environment.get_template(name).render(**context)
    text = _CLOCK_THEN_STOP.sub(r"\1", text)  # "a las 9:30 a. m.." -> "a las 9:30 a. m."
    if name.endswith((".subject.j2", ".whatsapp.j2")):
        return _tidy_sms(text)  # an email's subject, a WhatsApp text
    if name.endswith(".sms.j2"):
        text = _tidy_sms(text)
        return text if keep_break else without_break(text)
    return text.strip() + "\n"


_CLOCK_THEN_STOP = re.compile(r"\b([ap]\. m\.)\.")
SMS_SEGMENTS = 2  # GSM-7 segments a default text may cost, or the UCS-2 ones that hold as much (SmsLength.fits)


# A line of its own in a text template: what comes before it is what the first text must say
# (when, where, arrive, fasting, the ride home); what follows it (the medications note, the
# after-visit cautions) goes as the next text when the whole does not fit one. Nothing is cut.
PART_BREAK = "---"


def without_break(text: str) -> str:
    """The text as one message: the break line taken out."""
    return "\n".join(line for line in text.split("\n") if line.strip() != PART_BREAK)


def text_parts(text: str, segments: int = SMS_SEGMENTS) -> list[str]:
    """The texts one rendered text goes as, in order, each within `segments` (SmsLength.fits).

    Whole when it fits. Otherwise the lines before the break line, then those after it, each
    group packed line by line into as few texts as hold it; a line longer than a text on its own
    is cut between words, never dropped."""
    whole = without_break(text)
    if sms_length(whole).fits(segments):
        return [whole] if whole else []
    groups: list[list[str]] = [[]]
    for line in text.split("\n"):
        if line.strip() == PART_BREAK:
            groups.append([])
        elif line:
            groups[-1].append(line)
    first, rest = groups[0], [line for group in groups[1:] for line in group]
    # The first text keeps its opening lines; those at its end that do not fit go first in the next.
    while len(first) > 1 and not sms_length("\n".join(first)).fits(segments):
        rest.insert(0, first.pop())
    return _packed(first, segments) + _packed(rest, segments)


def texts_as_sent(store: "TemplateStore", name: str, context: dict, may_split: bool) -> list[str]:
    """The texts a text template goes as, the way reminders.sending sends it: split at its break
    line (`text_parts`) when its kind may go as several texts, else whole. The template editor's
    preview uses this, so an admin sees exactly the texts a patient gets."""
    text = render(store, name, context, keep_break=may_split)
    return (text_parts(text) or [text]) if may_split else [text]


def _packed(lines: list[str], segments: int) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    for line in lines:
        for piece in _pieces(line, segments):
            if current and not sms_length("\n".join([*current, piece])).fits(segments):
                parts.append("\n".join(current))
                current = []
            current.append(piece)
    if current:
        parts.append("\n".join(current))
    return parts


def _pieces(line: str, segments: int) -> list[str]:
    """A line as it fits in texts: whole, or cut between words."""
    if sms_length(line).fits(segments):
        return [line]
    pieces, current = [], ""
    for word in line.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and not sms_length(candidate).fits(segments):
            pieces.append(current)
            candidate = word
        current = candidate
    return pieces + [current] if current else pieces


def _failure_reason(exc: BaseException) -> str:
    """Line and kind of a failure, without the values it quoted (they may be a patient's)."""
    line = _template_line(exc)
    where = f"line {line}: " if line else ""
    if isinstance(exc, RenderLimitExceeded):
        return f"{where}{exc}"
    return f"{where}{type(exc).__name__} while sending"


def flag_failures(session: Session, store: TemplateStore, now: datetime) -> None:
    """Mark the active staff versions that failed while rendering, for the templates admin page."""
    from reminders.models import TemplateVersion

    for name, reason in store.failures.items():
        session.execute(update(TemplateVersion).where(TemplateVersion.name == name, TemplateVersion.active)
                        .values(failed_at=now, failure=reason[:500]))
    store.failures.clear()


def _tidy_sms(text: str) -> str:
    """One space between words, no empty lines, GSM-7 punctuation; accents stay (README "Language")."""
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    return gsm_safe("\n".join(line for line in lines if line))


def validate(store: TemplateStore, name: str, source: str, context: dict,
             time_limit: float = RENDER_TIME_LIMIT) -> TemplateProblem | None:
    """Parse and render a candidate source with a sample context; the problem names its line."""
    return validate_all(store, name, source, [("", context)], time.monotonic() + time_limit)


def validate_all(store: TemplateStore, name: str, source: str, contexts: list[tuple[str, dict]],
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
        return TemplateProblem(name, _template_line(exc), str(exc.message if hasattr(exc, "message") else exc))
    except Exception as exc:  # noqa: BLE001 - any failure of a candidate template is a refusal
        return TemplateProblem(name, _template_line(exc), f"{type(exc).__name__}: {exc}")
    return None


def _template_line(exc: BaseException) -> int | None:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        # "<template>" for a template compiled from a string; "<unknown>" once jinja rewrote the
        # traceback of one loaded by name through the FunctionLoader (it has no file name).
        if frame.filename in ("<template>", "<unknown>"):
            line = frame.lineno
    return line


def team_name(clinic_name: str) -> str:
    """"the Infusion Clinic team" for "The Infusion Clinic", "the Sunrise Ketamine team" otherwise."""
    name = clinic_name.strip()
    if name[:4].lower() == "the ":
        name = name[4:]
    return f"the {name} team"


def team_name_es(clinic_name: str) -> str:
    """"el equipo de The Infusion Clinic": names stay as the clinic writes them."""
    return f"el equipo de {clinic_name.strip()}"


def clinic_context(settings) -> dict:
    return {
        "name": settings.clinic_name,
        "team": team_name(settings.clinic_name),
        "team_es": team_name_es(settings.clinic_name),
        "phone": settings.clinic_phone,
        "address": settings.clinic_address,
        "crisis_line": settings.crisis_line,
        "emergency_number": settings.emergency_number,
        # How many texts a visit brings at most, as the welcome promises: TEXTS_PER_VISIT, which the
        # planner keeps to (reminders.planning.budget).
        "messages_per_visit": settings.texts_per_visit,
    }


def visit_context(appointment: Appointment, zone: str, series_length: int, language: str = DEFAULT_LANGUAGE,
                  prep: Preparation | None = None) -> dict:
    """The visit as a patient reads it: date and clock times in their zone and language. In
    Spanish every clock time carries its article ("las 9:30 a. m."), so a template writes
    "a {{ visit.time }}" or "hasta {{ visit.clear_liquids_until }}"."""
    local = appointment.starts_at.astimezone(ZoneInfo(zone))
    return {
        "date": date_words(local, language),
        "time": clock(local, language),
        "starts_at": local.isoformat(),
        "location": room_words(appointment),
        "kind": appointment.kind,
        "number": appointment.number_in_course,
        "series_length": max(series_length, appointment.number_in_course),
        "is_first": appointment.kind == "induction" and appointment.number_in_course == 1,
        "duration_minutes": appointment.duration_minutes,
        **visit_times(appointment.starts_at, appointment.duration_minutes, zone, prep or Preparation(), language),
        # What a check-in after this visit asks: "mood", or "hurt" for a course treating pain (the
        # word itself stays off lock screens).
        "checkin_asks": "hurt" if checkin_kind(appointment) == "pain" else "mood",
        # Nobody marked it completed (or no-show): a check-in must not say "after your visit".
        "unmarked": getattr(appointment, "status", None) in ("scheduled", "confirmed"),
    }


def room_words(appointment: Appointment) -> str:
    """Where in the clinic, as booked ("Suite 200"); nothing when the booking only named the
    location (the texts already say which one)."""
    text = " ".join((appointment.location or "").split())
    place = getattr(appointment, "place", None) if getattr(appointment, "location_id", None) else None
    if place is not None and text.casefold() in (place.code.casefold(), place.name.casefold()):
        return ""
    return text


def patient_context(patient, prep: Preparation) -> dict:
    medications = " ".join((getattr(patient, "medications_to_hold", "") or "").split())
    return {
        "first_name": patient.first_name,
        "last_name": patient.last_name,
        "language": getattr(patient, "language", None) or DEFAULT_LANGUAGE,
        # Whether the patient's messages go by email too ("see your email" would be false otherwise).
        "has_email": "email" in patient.channels() if hasattr(patient, "channels") else bool(getattr(patient, "email", None)),
        # Whether they get our texts (SMS or WhatsApp): "reply C to our text" would be false otherwise.
        "has_text": not getattr(patient, "sms_opted_out", False) and (
            bool(set(patient.channels()) & set(TEXT_CHANNELS)) if hasattr(patient, "channels")
            else bool(getattr(patient, "phone", None))),
        # In the prescriber's words; `medications_fit_sms` says whether it is short enough for the
        # first text (a lock screen shows it); a longer one goes after the template's break line:
        # "see your email" for a patient who gets email, in full for one who does not.
        "medications_to_hold": medications,
        "medications_fit_sms": bool(medications) and len(medications) <= prep.sms_medications_max_chars,
        "medications_pointer": True,  # kept for clinics' own template versions that ask for it
    }


def template_language(name: str) -> str:
    """The language a template is written in: its folder ("es/welcome.sms.j2"), else English."""
    return name.split("/", 1)[0] if "/" in name else DEFAULT_LANGUAGE


def message_context(settings, patient: Patient, appointment: Appointment | None, series_length: int,
                    language: str | None = None) -> dict:
    """What a template sees. `language` is that of the template being rendered (dates and clock
    times must match it: a patient whose language has no template gets English words)."""
    prep = Preparation.from_settings(settings)
    language = language or patient.language or DEFAULT_LANGUAGE
    context = {
        "patient": patient_context(patient, prep),
        "clinic": clinic_context(settings),
        "prep": prep.context(),
        "visit": None,
        # "We missed you": the patient's next visit still on, when one is booked (reminders.sending).
        "next_visit": None,
    }
    if appointment is not None:
        context["visit"] = visit_context(appointment, patient.timezone, series_length, language, prep)
        # A clinic with several locations says which one's door to come to (its address).
        context["visit"]["address"] = settings.clinic_address if getattr(appointment, "location_id", None) else ""
    return context


SAMPLE_START = datetime(2026, 3, 3, 14, 30, tzinfo=ZoneInfo("UTC"))  # Tuesday 9:30 AM in New York
SAMPLE_ZONE = "America/New_York"


def sample_context(settings, language: str = DEFAULT_LANGUAGE) -> dict:
    """A made-up patient and visit, for previews and for checking a template before it is saved."""
    prep = Preparation.from_settings(settings)
    local = SAMPLE_START.astimezone(ZoneInfo(SAMPLE_ZONE))
    return {
        "patient": {"first_name": "Alex", "last_name": "Rivera", "language": language, "has_email": True, "has_text": True,
                    "medications_to_hold": "No lamotrigine the morning of the visit",
                    "medications_fit_sms": True, "medications_pointer": True},
        "clinic": clinic_context(settings),
        "prep": prep.context(),
        "visit": {
            "date": date_words(local, language), "time": clock(local, language),
            "starts_at": local.isoformat(),
            "location": "Suite 200", "address": "500 Congress Ave, Austin", "kind": "induction", "number": 3,
            "series_length": 6,
            "is_first": False, "duration_minutes": 60, "checkin_asks": "mood", "unmarked": False,
            **visit_times(SAMPLE_START, 60, SAMPLE_ZONE, prep, language),
        },
        # After a missed visit: the next one booked (None when there is none).
        "next_visit": {"date": date_words(local + timedelta(days=2), language),
                       "time": clock(local + timedelta(days=2), language), "kind": "induction", "number": 3,
                       "series_length": 6, "location": "Suite 200"},
        # Answers to a patient's text: when a nurse reads it ("today", "Monday at 8 AM").
        "answer": {"read_when": "el lunes a las 8:00" if language == "es" else "Monday at 8 AM", "in_office_hours": False, "score": 7, "asks": "mood", "period": "day",
                   "symptoms": True, "poison_control": True, "callback_minutes": 30},
        # A check-in by email (reminders.inbound.checkin_links): the page it is answered on.
        "checkin": {"link": "https://clinic.example.org/c/Xb3kP9qLm2VwR7tYz5nJaQ", "expires": date_words(local, language)},
        # A questionnaire before the visit (reminders.measures): by link, or by SMS one item at a time.
        "questionnaire": {
            "link": "https://clinic.example.org/q/h7Gq2LmXv9RkTz0bYw4sNa", "by_sms": False, "questions": 16,
            "minutes": 3, "expires": date_words(local, language), "started": False,
            # An answer by SMS that also goes to staff (a question with the number): the reply says so.
            "passed_on": False,
            # The answer the next question's text confirms first ("2 for question 1, thank you.").
            "answered": {"value": 2, "number": 1},
            "question": {"stem": "Over the last 2 weeks, how often have you been bothered by any of the following problems?",
                         "text": "Little interest or pleasure in doing things", "number": 1, "of": 9,
                         "options": "0 Not at all, 1 Several days, 2 More than half the days, 3 Nearly every day",
                         "lowest": 0, "highest": 3},
        },
    }
