"""`reminders init` builds the same schema the models describe, on SQLite and on PostgreSQL."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from reminders.migrations import upgrade
from reminders.models import Base


def differences(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_sqlite_schema_matches_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    assert differences(url) == []


@pytest.mark.postgres
def test_postgres_schema_matches_the_models(postgres_url):
    upgrade(postgres_url)
    assert differences(postgres_url) == []
    engine = create_engine(postgres_url)
    indexes = {index["name"] for index in inspect(engine).get_indexes("outbox")}
    engine.dispose()
    assert "ix_outbox_status_due" in indexes


def test_init_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    upgrade(url)
    assert differences(url) == []
