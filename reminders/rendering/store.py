"""Template sources: the files in templates/ are the defaults; the clinic's active staff versions in
the database win. Which template a message part is rendered from, in the patient's language."""
from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import case, event, func, select, update
from sqlalchemy.orm import Session

from reminders.channel_specs import ChannelSpec
from reminders.models import TemplateVersion
from reminders.models.patients import DEFAULT_LANGUAGE
from reminders.rendering.engine import LimitedEnvironment, environment

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


def forget_shared_templates() -> None:
    """Drop every database's shared templates: the test suite reuses one database URL for a new
    database in each test, which a clinic never does."""
    with _shared_lock:
        _shared_by_database.clear()


def _versions_look_again() -> None:
    for shared in list(_shared_by_database.values()):
        shared.checked_at = float("-inf")


class _DefaultsOnly:
    """A store's files alone, without the staff versions: what a failed staff version falls back to."""

    def __init__(self, store: TemplateStore):
        self.source = store.default_source
        self.default_path = store.default_path
        self.overrides = dict


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
    `text` and `html` for a channel with a subject (its spec's parts say their files). The HTML
    part goes only in the language of the text part (an English HTML beside a Spanish text would
    say something else), and only when it exists."""
    if not spec.has_subject:
        return {"body": text_template(store, template, spec, language)}
    suffixes = {part.name: part.suffix for part in spec.parts}
    names: dict[str, str | None] = {part: localized(store, template + suffixes[part], language)
                                    for part in ("subject", "text")}
    folder = names["text"][: -len(template + suffixes["text"])]
    html = folder + template + suffixes["html"]
    names["html"] = html if store.exists(html) else None
    return names


def text_template(store: TemplateStore, template: str, spec: ChannelSpec, language: str | None) -> str:
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


def flag_failures(session: Session, store: TemplateStore, now: datetime) -> None:
    """Mark the active staff versions that failed while rendering, for the templates admin page."""
    for name, reason in store.failures.items():
        session.execute(update(TemplateVersion).where(TemplateVersion.name == name, TemplateVersion.active)
                        .values(failed_at=now, failure=reason[:500]))
    store.failures.clear()
