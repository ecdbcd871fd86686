"""What a step in a template would build, measured before it runs: a value's text, a printf
format, a method of a text, lorem ipsum. Anything past MAX_OUTPUT is refused (RenderLimitExceeded)."""
from __future__ import annotations

import inspect
import re
from collections.abc import ItemsView, KeysView, Mapping, Set as AbstractSet, ValuesView

from jinja2.utils import Namespace, generate_lorem_ipsum

from reminders.rendering.budget import MAX_OUTPUT, RenderLimitExceeded, current_budget

NUMBER = re.compile(r"\d+")
# A printf conversion: %s, %(name)s, %-8.3f, %*d, %%
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
MAX_INT_BITS = 1024  # a product past this is no count, date or dose; it only costs time
TEXTS = (str, bytes, bytearray)
_SEQUENCES = (list, tuple, AbstractSet, KeysView, ValuesView, ItemsView)


def _too_big(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT


def check_arguments(what: str, args, kwargs) -> None:
    for value in (*args, *kwargs.values()):
        if _too_big(value):
            raise RenderLimitExceeded(f"{what} was given {value}: numbers over {MAX_OUTPUT} are not allowed here")


def check_result(what: str, value):
    if isinstance(value, (*TEXTS, list, tuple)) and len(value) > MAX_OUTPUT:
        raise RenderLimitExceeded(f"{what} made something longer than {MAX_OUTPUT}")
    return value


def refuse_over(what: str, size: int) -> None:
    """Refuse, before it is built, a result of `size` characters (or items) over MAX_OUTPUT."""
    if size > MAX_OUTPUT:
        raise RenderLimitExceeded(f"{what} would make something longer than {MAX_OUTPUT} characters")


def size_of(value, text: bool = True) -> int:
    """How big a value is, counted without building anything from it, and only until past MAX_OUTPUT.

    text=True: about how many characters str(value) has. A list holding the same long list a
    thousand times prints it a thousand times, so nested values count each time they appear: a
    value made in a few small steps whose text would take gigabytes is found out in at most
    MAX_OUTPUT steps. text=False: how many items it holds, nested ones included (what '*' repeats
    and `sum` joins)."""
    if isinstance(value, TEXTS):
        return len(value)
    budget = current_budget()
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
        elif isinstance(item, TEXTS):
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


def printf_size(fmt: str, args) -> int:
    """About how long `fmt % args` would be: the format's text, and for each conversion the widest
    of its width, its precision and the text of the value it converts."""
    size = len(fmt)
    if isinstance(args, Mapping):  # "%(name)s": any conversion may print any value
        widest = max((len(n) > 6 and MAX_OUTPUT + 1 or int(n) for n in NUMBER.findall(fmt)), default=0)
        return size + fmt.count("%") * (size_of(args) + widest)
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
        size += max(widest, size_of(value))
        if size > MAX_OUTPUT:
            break
    return size


def check_text_method(text, name: str, args: tuple, kwargs: dict) -> tuple:
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
            refuse_over(what, len(text) + found * (len(new) - len(old)))
        elif name == "join" and len(args) == 1:
            items = list(args[0])
            size = len(text) * max(len(items) - 1, 0)
            for item in items:
                if size > MAX_OUTPUT:
                    break
                size += len(item) if isinstance(item, TEXTS) else 0
            refuse_over(what, size)
            return (items,)
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            tabs = text.count("\t" if isinstance(text, str) else b"\t")
            refuse_over(what, len(text) + tabs * max(tabsize, 0))
        elif name == "translate" and args and isinstance(args[0], Mapping):
            longest = max((len(v) for v in args[0].values() if isinstance(v, TEXTS)), default=1)
            refuse_over(what, len(text) * max(longest, 1))
    except TypeError:
        pass  # not arguments the method takes: it says so itself
    return args


_LIPSUM = inspect.signature(generate_lorem_ipsum)


def check_lipsum(args: tuple, kwargs: dict) -> None:
    try:
        given = _LIPSUM.bind(*args, **kwargs)
    except TypeError:
        return
    given.apply_defaults()
    paragraphs, words = given.arguments["n"], given.arguments["max"]
    if isinstance(paragraphs, int) and isinstance(words, int):
        refuse_over("lipsum", paragraphs * words * 12)  # about 12 characters a word

