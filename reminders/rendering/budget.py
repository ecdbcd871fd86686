"""A render's budget: cut off after RENDER_TIME_LIMIT seconds or MAX_OUTPUT characters, so a staff
template with a runaway loop costs one message a fraction of a second, not a worker."""
from __future__ import annotations

import dis
import functools
import sys
import threading
import time

from jinja2 import Template
from jinja2.sandbox import SecurityError

RENDER_TIME_LIMIT = 0.2  # seconds for one render of one template
MAX_OUTPUT = 100_000  # characters one render may produce (a long HTML email is about 10,000)
_CHECK_EVERY = 256  # trace events between two looks at the clock


class RenderLimitExceeded(SecurityError):
    """A render ran out of time or produced too much; the template is at fault, not the data."""


class Budget:
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


def current_budget() -> Budget | None:
    """The budget of the render running in this thread, if any."""
    return getattr(_current, "budget", None)


class LimitedTemplate(Template):
    """Every render through a LimitedEnvironment has a time and size budget.

    Only a template with a loop can run long without calling anything, so only such a template
    is watched line by line (sys.settrace costs a few times the render); calls (macros, methods)
    check the clock in LimitedEnvironment.call, and output is counted chunk by chunk."""

    def render(self, *args, **kwargs) -> str:
        budget = Budget(self.environment.time_limit)
        outer, _current.budget = current_budget(), budget
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
