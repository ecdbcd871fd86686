"""Which of the clinic's locations a staff page shows.

A staff user who works at some locations sees theirs; one who works at none listed sees every
location. What belongs to the default location (location_id NULL: the settings) is shown to
everyone, so nothing there is hidden from every user. `?location=<code>` narrows a page to one
location (DEFAULT_CHOICE: the default location), among those the user may see."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, request
from sqlalchemy import false, or_

from reminders.locations import LocationBook, Place, staff_locations
from reminders.web.context import db, settings
from reminders.web.staff.auth import current_user

# The default location in ?location= (a location's code cannot start with "_").
DEFAULT_CHOICE = "_default"


@dataclass(frozen=True)
class Scope:
    """The locations a list shows: `ids` (None: every location) and whether the default's too."""

    ids: frozenset[int] | None = None
    default: bool = True

    @property
    def everything(self) -> bool:
        return self.ids is None and self.default

    def clause(self, column):
        """A WHERE condition on a location id column (None: no condition)."""
        if self.ids is None:
            return None if self.default else column.is_not(None)
        parts = [column.in_(sorted(self.ids))] if self.ids else []
        if self.default:
            parts.append(column.is_(None))
        return or_(*parts) if parts else false()

    def admits(self, location_id: int | None) -> bool:
        if location_id is None:
            return self.default
        return self.ids is None or location_id in self.ids


EVERYTHING = Scope()


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True)
class PageFilter:
    """A page's location select: what it shows, what is chosen and what can be chosen."""

    scope: Scope
    chosen: str  # "" for all the user's locations
    choices: tuple[Choice, ...]  # empty: the clinic has no locations, no select is shown

    @property
    def shown(self) -> bool:
        return bool(self.choices)


def book() -> LocationBook:
    """The clinic's locations, read once a request."""
    if "location_book" not in g:
        g.location_book = LocationBook.load(db(), settings())
    return g.location_book


def user_scope() -> Scope:
    """What the signed-in user sees by default: their locations and the default location's."""
    if "location_scope" not in g:
        user = current_user()
        works_at = staff_locations(db(), user.id) if user is not None and book().several else set()
        g.location_scope = Scope(frozenset(works_at)) if works_at else EVERYTHING
    return g.location_scope


def places_for_user() -> list[Place]:
    scope = user_scope()
    return [place for place in book().choices(active_only=False) if scope.admits(place.id)]


def page_filter() -> PageFilter:
    """The scope a list page shows, from ?location= (an unknown or not-allowed value: all)."""
    if not book().several:
        return PageFilter(EVERYTHING, "", ())
    places = places_for_user()
    choices = (Choice("", "All locations"), Choice(DEFAULT_CHOICE, book().default.name),
               *(Choice(place.code, place.name) for place in places))
    wanted = request.args.get("location", "").strip().lower()
    if wanted == DEFAULT_CHOICE:
        return PageFilter(Scope(frozenset(), default=True), wanted, choices)
    for place in places:
        if place.code == wanted:
            return PageFilter(Scope(frozenset({place.id}), default=False), wanted, choices)
    return PageFilter(user_scope(), "", choices)


def place_name(location_id: int | None) -> str:
    """The location's name beside a row, when the clinic has several (else nothing)."""
    return book().place(location_id).name if book().several else ""


def narrowed(query, column, scope: Scope):
    """The query kept to the scope's locations."""
    clause = scope.clause(column)
    return query if clause is None else query.where(clause)
