"""A throw-away PostgreSQL schema per test (skipped off CI when no server runs)."""
from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("RADLOOP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def postgres_schema_url(prefix: str = "t") -> Iterator[str]:
    """A URL whose search_path is a fresh schema in db `test`, dropped afterwards."""
    admin = sa.create_engine(PG_URL, poolclass=sa.NullPool)
    try:
        admin.connect().close()
    except sa.exc.OperationalError as exc:
        admin.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
