"""A template's problem in plain words: no Jinja or Python words where plain ones will do, and
the name an admin most likely meant when they wrote one a message is not given."""
from __future__ import annotations

import difflib
import re
from dataclasses import replace

from reminders.rendering import TemplateProblem

# Words admins reach for, and the variable that holds them.
SYNONYMS = {
    "nickname": "first_name", "name": "first_name", "firstname": "first_name", "first": "first_name",
    "given_name": "first_name", "surname": "last_name", "lastname": "last_name", "family_name": "last_name",
    "day": "date", "when": "time", "hour": "time", "place": "location", "where": "location", "address": "address",
    "clinic_name": "name", "telephone": "phone", "phone_number": "phone", "hotline": "crisis_line",
    "crisis": "crisis_line", "emergency": "emergency_number", "fast_until": "eat_until", "stop_eating": "eat_until",
}


def variable_paths(context: dict, prefix: str = "") -> list[str]:
    """Every name a message can print, dotted: patient.first_name, visit.eat_until, prep.fasting, ..."""
    paths = []
    for key, value in context.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            paths.extend(variable_paths(value, f"{path}."))
        else:
            paths.append(path)
    return paths


def suggestion(path: str, context: dict) -> str | None:
    """The variable an admin most likely meant by `path`."""
    known = variable_paths(context)
    *group, last = path.split(".")
    siblings = [p for p in known if p.rsplit(".", 1)[0] == ".".join(group)] if group else []
    meant = SYNONYMS.get(last.lower())
    if meant and ".".join([*group, meant]) in known:
        return ".".join([*group, meant])
    if meant and not group:
        return next((p for p in known if p.endswith(f".{meant}")), None)
    close = difflib.get_close_matches(path, siblings or known, n=1, cutoff=0.6)
    if not close and not group:  # "first_name" on its own: patient.first_name
        close = [p for p in known if p.endswith(f".{last}")][:1]
    return close[0] if close else None


def not_usable(path: str, context: dict) -> str:
    meant = suggestion(path, context)
    told = f"`{path}` is not something this message can use."
    return f"{told} Did you mean `{meant}`?" if meant else told


_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_NO_ELEMENT = re.compile(r"^'?\w+ object'? has no element ")
_UNDEFINED = re.compile(r"^'([^']+)' is undefined")
_NEVER_CLOSED = re.compile(r"innermost block that needs to be closed is '(\w+)'")
_UNKNOWN_TAG = re.compile(r"Encountered unknown tag '(\w+)'")
_KINDS_OF_FAILURE = {
    "ZeroDivisionError": "this divides by zero",
    "IndexError": "this picks a letter or item that is not there",
    "KeyError": "this picks something that is not there",
    "TypeError": "this mixes things that do not go together (a number and a word?)",
    "ValueError": "this turns something into a number or date that is not one",
    "UnicodeEncodeError": "this cannot handle a name written in another alphabet",
}


def plain_words(problem: TemplateProblem, source: str, context: dict) -> TemplateProblem:
    """The problem as an admin reads it: no Jinja or Python words where plain ones will do."""
    reason, line = problem.reason, problem.line
    lines = source.split("\n")
    if _NO_ELEMENT.search(reason):
        reason = "this picks a letter or item that is not there" + _for_whom(reason)
    elif (found := _NO_ATTRIBUTE.search(reason)) and reason.startswith("'"):
        path = _written_path(lines[line - 1] if line and line <= len(lines) else source, found.group(1))
        reason = not_usable(path, context) + _for_whom(reason)
    elif found := _UNDEFINED.match(reason):
        reason = not_usable(found.group(1), context) + _for_whom(reason)
    elif found := _NEVER_CLOSED.search(reason):
        tag = found.group(1)
        line = _opening_line(source, tag) or line
        reason = f"a `{{% {tag} %}}` is never closed: end it with `{{% end{tag} %}}`."
    elif "unexpected end of template" in reason.lower():
        reason = "a `{{` or `{%` is never closed: end it with `}}` or `%}`."
    elif found := _UNKNOWN_TAG.search(reason):
        reason = f"`{{% {found.group(1)} %}}` is not something a message can use."
    elif isinstance(problem, TemplateProblem) and _is_syntax(reason):
        reason = f"this line cannot be read: {reason.rstrip('.')}. Check its `{{{{ }}}}` and `{{% %}}`."
    else:
        for kind, words in _KINDS_OF_FAILURE.items():
            if reason.startswith(f"{kind}:"):
                reason = words + _for_whom(reason)
                break
    return replace(problem, line=line, reason=reason)


def _written_path(line: str, attribute: str) -> str:
    """`patient.nickname` as written on the line, from the attribute the render missed."""
    found = re.search(rf"([A-Za-z_][\w.]*)\.{re.escape(attribute)}\b", line) or \
        re.search(rf"([A-Za-z_][\w.]*)\[['\"]{re.escape(attribute)}['\"]\]", line)
    return f"{found.group(1)}.{attribute}" if found else attribute


def _for_whom(reason: str) -> str:
    """" (for a patient with no last name, ...)": which sample it failed for, when one was named."""
    found = re.search(r" \((for [^)]*)\)$", reason)
    return f" ({found.group(1)})" if found else ""


def _is_syntax(reason: str) -> bool:
    return reason.startswith(("unexpected", "expected token", "Unexpected", "tag name expected", "Encountered"))


def _opening_line(source: str, tag: str) -> int | None:
    """The line of the last `{% tag %}` left open (Jinja names the end of the template instead)."""
    opened: list[int] = []
    for found in re.finditer(r"{%-?\s*(end)?(\w+)", source):
        if found.group(2) != tag:
            continue
        if found.group(1):
            if opened:
                opened.pop()
        else:
            opened.append(source.count("\n", 0, found.start()) + 1)
    return opened[-1] if opened else None


def problem_message(problem: TemplateProblem) -> str:
    """"Line 3: `patient.nickname` is not ...", or the reason alone when it has no line."""
    reason = problem.reason[:1].upper() + problem.reason[1:] if not problem.line else problem.reason
    return f"Line {problem.line}: {reason}" if problem.line else reason
