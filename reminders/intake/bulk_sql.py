"""Set-based statements for many rows at once: INSERT and UPDATE by id with one statement each
(on PostgreSQL over unnest(arrays), a short statement whatever the number of rows), and IN over
one array parameter."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Sequence

from sqlalchemy import any_, bindparam, insert, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def among(column, values, session: Session):
    """column IN (values). On PostgreSQL `= ANY(array)`: one parameter, not hundreds."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def write_changes(session: Session, table, changes: list[tuple[int, dict]]) -> None:
    """One UPDATE per set of changed columns, for the rows that changed."""
    groups: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for row_id, values in changes:
        if values:
            groups[tuple(sorted(values))].append((row_id, values))
    for rows in groups.values():
        bulk_update(session, table, rows)


def _pg_type(table, column: str, dialect) -> str:
    """The column's type without a length: an explicit cast to VARCHAR(n) would cut a longer
    value short where storing it into the column refuses it."""
    return re.sub(r"\(\d+\)", "", table.c[column].type.compile(dialect=dialect))


def bulk_insert(session: Session, table, rows: list[dict], returning: Sequence[str] = ()):
    """INSERT many rows (all with the same keys); the `returning` columns of each row, if asked.

    On PostgreSQL one INSERT ... SELECT FROM unnest(arrays): a short statement whatever the
    number of rows (a VALUES list of thousands of parameters costs more to build and parse than
    to run). Elsewhere SQLAlchemy's executemany."""
    if not rows:
        return []
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        statement = insert(table)
        if returning:
            return list(session.execute(statement.returning(*(table.c[c] for c in returning)), rows))
        session.execute(statement, rows)
        return []
    columns = list(rows[0])
    arrays = tuple([_bind(table, c, row[c], dialect) for row in rows] for c in columns)
    sql = (f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT * FROM unnest("
           + ", ".join(f"%s::{_pg_type(table, c, dialect)}[]" for c in columns) + ")")
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
        return list(connection.exec_driver_sql(sql, arrays))
    connection.exec_driver_sql(sql, arrays)
    return []


def bulk_update(session: Session, table, rows: list[tuple[int, dict]]) -> None:
    """UPDATE rows by id, each with the same columns: [(id, {column: value})]."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = sorted(rows[0][1])
    if dialect.name != "postgresql":
        statement = (update(table).where(table.c.id == bindparam("_id"))
                     .values({c: bindparam(f"_{c}") for c in columns}))
        session.execute(statement, [{"_id": row_id, **{f"_{c}": v for c, v in values.items()}}
                                    for row_id, values in rows])
        return
    arrays = ([row_id for row_id, _ in rows],
              *([_bind(table, c, values[c], dialect) for _, values in rows] for c in columns))
    sql = (f"UPDATE {table.name} SET {', '.join(f'{c} = v.{c}' for c in columns)} FROM unnest("
           + ", ".join(["%s::integer[]", *(f"%s::{_pg_type(table, c, dialect)}[]" for c in columns)])
           + f") AS v(id, {', '.join(columns)}) WHERE {table.name}.id = v.id")
    connection.exec_driver_sql(sql, arrays)


def _bind(table, column: str, value, dialect):
    """The value as the column's type would send it (e.g. UTCDateTime's checks and conversion)."""
    column_type = table.c[column].type
    if isinstance(column_type, TypeDecorator):
        return column_type.process_bind_param(value, dialect)
    return value
