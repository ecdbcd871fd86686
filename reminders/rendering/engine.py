"""The sandbox templates render in: Jinja2's immutable SandboxedEnvironment with StrictUndefined and
a budget (reminders.rendering.budget), its measured filters and formatters, and templates compiled
once per process."""
from __future__ import annotations

import functools
import math
import threading
import traceback
import types
from pathlib import Path
from typing import Protocol

from jinja2 import FunctionLoader, StrictUndefined
from jinja2.bccache import BytecodeCache
from jinja2.compiler import CodeGenerator, optimizeconst
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup

from reminders.rendering.budget import (
    MAX_OUTPUT, RENDER_TIME_LIMIT, LimitedTemplate, RenderLimitExceeded, current_budget,
)
from reminders.rendering.filters import guarded_filters
from reminders.rendering.sizes import (
    MAX_INT_BITS, NUMBER, TEXTS, check_arguments, check_lipsum, check_result, check_text_method, printf_size,
    refuse_over, size_of,
)


class TemplateSources(Protocol):
    """Where the loader reads a template's source (a TemplateStore)."""

    def source(self, name: str) -> str | None: ...

    def overrides(self) -> dict[str, str]: ...

    def default_path(self, name: str) -> Path | None: ...


def _measured_output(value):
    """`{{ value }}`: a value whose text would pass MAX_OUTPUT is refused before it is made."""
    if not isinstance(value, str):
        refuse_over("printing a value", size_of(value))
    return value


class _MeasuredFormatter(SandboxedFormatter):
    """str.format in the sandbox, adding up what its fields make: "{0}{0}{0}...".format(long_text)
    or many "{:>99999}" fields are refused before the field that would pass MAX_OUTPUT is made."""

    def __init__(self, env, **kwargs):
        super().__init__(env, **kwargs)
        self.made = 0

    def convert_field(self, value, conversion):
        if conversion is not None:  # !r and !a escape: up to 10 characters for one
            refuse_over("'format'", self.made + size_of(value) * (10 if conversion == "a" else 4))
        return super().convert_field(value, conversion)

    def format_field(self, value, format_spec):
        widest = max((MAX_OUTPUT + 1 if len(n) > 6 else int(n) for n in NUMBER.findall(format_spec)), default=0)
        self.made += max(size_of(value), widest)
        refuse_over("'format'", self.made)
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
    loop) with a budget: time (see Budget), output size, and operators or calls that would build
    a huge value in one step. What a step would build is measured before it runs, never after:
    "x" * 10**9, ("a"*20000).replace("a", "a"*20000), a join or a format of a long text many
    times, "x"|center(10**9), 9**9**9, a list printed that holds the same long list many times."""

    template_class = LimitedTemplate
    code_generator_class = _MeasuringCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "//", "+"})

    def __init__(self, *args, time_limit: float = RENDER_TIME_LIMIT, **kwargs):
        super().__init__(*args, **kwargs)
        self.time_limit = time_limit
        self.filters = dict(guarded_filters(self.filters))
        self.finalize = _measured_output

    @staticmethod
    def measured_parts(parts: tuple) -> tuple:
        size = 0
        for part in parts:
            size += size_of(part)
            refuse_over("'~'", size)
        return parts

    def call_binop(self, context, operator: str, left, right):
        if operator == "**":
            if isinstance(left, (int, float)) and isinstance(right, (int, float)) and abs(left) > 1 \
                    and right * math.log2(abs(left)) > 64:
                raise RenderLimitExceeded("a power that large is not allowed")
        elif operator == "*":
            for value, times in ((left, right), (right, left)):
                if isinstance(value, (*TEXTS, list, tuple)) and isinstance(times, int) \
                        and size_of(value, text=False) * times > MAX_OUTPUT:
                    raise RenderLimitExceeded(f"a repetition longer than {MAX_OUTPUT} is not allowed")
            if isinstance(left, int) and isinstance(right, int) \
                    and left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimitExceeded("a number that large is not allowed")
        elif operator == "%" and isinstance(left, str):
            refuse_over("'%'", printf_size(left, right))
        result = super().call_binop(context, operator, left, right)
        return check_result(f"'{operator}'", result)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - jinja's own signature
        budget = current_budget()
        if budget is not None:
            budget.check()  # macros calling themselves need no loop to run for ever
        check_arguments("a call", args, kwargs)
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, TEXTS):
            args = check_text_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        elif __obj is generate_lorem_ipsum:
            check_lipsum(args, kwargs)
        return check_result("a call", super().call(__context, __obj, *args, **kwargs))

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


def _autoescape(name: str | None) -> bool:
    return bool(name and name.endswith(".html.j2"))


class CompiledOnce(BytecodeCache):
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


_compiled = CompiledOnce()


def environment(store: TemplateSources, time_limit: float = RENDER_TIME_LIMIT) -> LimitedEnvironment:
    return LimitedEnvironment(
        bytecode_cache=_compiled,
        loader=FunctionLoader(functools.partial(_load, store)),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        time_limit=time_limit,
    )


def _load(store: TemplateSources, name: str):
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


def template_line(exc: BaseException) -> int | None:
    """The template's line a failure happened on, when it is known."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        # "<template>" for a template compiled from a string; "<unknown>" once jinja rewrote the
        # traceback of one loaded by name through the FunctionLoader (it has no file name).
        if frame.filename in ("<template>", "<unknown>"):
            line = frame.lineno
    return line
