"""Interruptions: what stops a piece of work from outside, as opposed to an error in the work.

A task's time limit (Celery's SoftTimeLimitExceeded, raised inside the task when its soft limit
passes), Ctrl-C and a process asked to exit are no fault of the record in hand: code that records
a per-record error and carries on ("one bad record never stops the clinic") must roll back and let
these through instead, so the task ends and the record is tried again by the next pass.

Recognised by class name, so that this module (and the planner) need not import Celery: Celery's
classes are billiard's (`billiard.exceptions`), and a subclass counts as well.
"""
from __future__ import annotations

# Celery (billiard) time limits: the soft one is raised in the task; the hard one kills the child
# process, and is named here for code that sees it re-raised.
TIME_LIMIT_NAMES = frozenset({"SoftTimeLimitExceeded", "TimeLimitExceeded"})


def is_interruption(error: BaseException) -> bool:
    """True for a time limit, KeyboardInterrupt, SystemExit and anything else that is not an
    `Exception` (GeneratorExit): never to be recorded against a record."""
    if not isinstance(error, Exception):
        return True
    return any(cls.__name__ in TIME_LIMIT_NAMES for cls in type(error).__mro__)
