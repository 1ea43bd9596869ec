"""Collect the SQL statements a block of test code runs on the metadata database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import event


@contextlib.contextmanager
def sql_statements(backends) -> Iterator[list[str]]:
    seen: list[str] = []

    def on_execute(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(backends.engine.sync_engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(backends.engine.sync_engine, "before_cursor_execute", on_execute)
