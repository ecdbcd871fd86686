"""Jinja's filters, each wrapped to refuse a result past MAX_OUTPUT before it is made."""
from __future__ import annotations

import functools
import inspect

from jinja2 import Environment
from jinja2.nodes import EvalContext
from jinja2.runtime import Context

from reminders.rendering.budget import MAX_OUTPUT
from reminders.rendering.sizes import (
    check_arguments, check_result, printf_size, refuse_over, size_of,
)

_CONTEXTS = (Context, EvalContext, Environment)

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
                refuse_over(what, size_of(value))
    try:
        given = signature.bind(*args, **kwargs) if signature is not None else None
    except TypeError:
        return args  # the filter says what is wrong
    if given is None:
        return args
    given.apply_defaults()
    _refuse_long_result(name, what, given.arguments)
    return args


def _refuse_long_result(name: str, what: str, a: dict) -> None:
    """What a filter would make, from its bound arguments `a`, refused past MAX_OUTPUT."""
    if name == "join":
        refuse_over(what, size_of(a["d"]))
        size = len(str(a["d"])) * max(len(a["value"]) - 1, 0)
        for item in a["value"]:
            size += size_of(item)
            if size > MAX_OUTPUT:
                break
        refuse_over(what, size)
    elif name == "sum":
        size = size_of(a["start"], text=False)
        for item in a["iterable"]:
            size += size_of(item, text=False)
            if size > MAX_OUTPUT:
                break
        refuse_over(what, size)
    elif name == "tojson" and isinstance(a["indent"], int):
        refuse_over(what, size_of(a["value"]) * (1 + max(a["indent"], 0)))
    elif name in ("replace", "indent", "wordwrap", "urlize", "format"):
        _refuse_long_text(name, what, a)


def _refuse_long_text(name: str, what: str, a: dict) -> None:
    """The filters that make a longer text of their text: what they would make, refused past MAX_OUTPUT."""
    text = str(next(iter(v for k, v in a.items() if k not in ("eval_ctx", "environment"))))  # measured above
    if name == "replace":
        old, new, count = str(a["old"]), str(a["new"]), a["count"]
        found = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            found = min(found, count)
        refuse_over(what, len(text) + found * (len(new) - len(old)))
    elif name == "indent" and isinstance(a["width"], (int, str)):
        pad = len(a["width"]) if isinstance(a["width"], str) else a["width"]
        refuse_over(what, len(text) + (text.count("\n") + 1) * pad)
    elif name == "wordwrap" and isinstance(a["width"], int):
        wrap = len(str(a["wrapstring"])) if a["wrapstring"] is not None else 2
        lines = 2 * len(text) // max(a["width"], 1) + text.count("\n") + 2
        refuse_over(what, len(text) + lines * wrap)
    elif name == "urlize":
        per_link = len(str(a["target"] or "")) + len(str(a["rel"] or "")) + 100
        refuse_over(what, 3 * len(text) + len(text.split()) * per_link)
    elif name == "format":
        refuse_over(what, printf_size(text, a["kwargs"] or a["args"]))


def _guarded_filter(name: str, function):
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        signature = None

    @functools.wraps(function)  # keeps jinja's pass_context/pass_eval_context marks
    def guarded(*args, **kwargs):
        check_arguments(f"the filter '{name}'", args, kwargs)
        args = _check_filter(name, signature, args, kwargs)
        return check_result(f"the filter '{name}'", function(*args, **kwargs))

    return guarded


@functools.lru_cache(maxsize=None)
def _guarded_filters_once(items: tuple) -> tuple:
    return tuple((name, _guarded_filter(name, function)) for name, function in items)


def guarded_filters(filters: dict) -> tuple:
    """Jinja's filters wrapped once per process (an environment is made per pass, or per send)."""
    return _guarded_filters_once(tuple(filters.items()))
