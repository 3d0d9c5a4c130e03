"""Append-only evidence tables in the database itself (R10.5 "protected", R10.2.4).

The audit trail (`audit_record`, `audit_checkpoint`) and the electronic signatures
of reports (`report_signature`) are evidence: rows are added, never changed or
removed. A recalled or corrected report keeps its signature; the correction is a
new, separately signed version naming the one it supersedes.

Two layers, because either alone can be argued away:
- triggers refuse UPDATE, DELETE (and on PostgreSQL TRUNCATE) of those tables
  for every role, the owner included (installed by the migrations and by `create_all`);
- `grant_app_role` gives the application's own PostgreSQL role INSERT and SELECT
  on them and nothing more, so even dropping a trigger needs another role.
Removing old audit records once archived (retention, `security.audit_archive.purge`)
is a maintenance role's job, with the triggers disabled inside that one transaction
(`deletes_allowed`). On PostgreSQL that needs the table owner: the app's
INSERT+SELECT role can neither disable a trigger nor delete.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

AUDIT_TABLES = ("audit_record", "audit_checkpoint")
SIGNATURE_TABLES = ("report_signature",)
APPEND_ONLY_TABLES = AUDIT_TABLES + SIGNATURE_TABLES

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION radloop_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% rows are append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _pg_statements(table: str) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION radloop_audit_append_only()",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION radloop_audit_append_only()",
    ]


def _sqlite_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} rows are append-only: {op} refused'); END"
        for op in ("UPDATE", "DELETE")
    ]


def install_append_only(conn: Connection, tables: tuple[str, ...] = APPEND_ONLY_TABLES) -> None:
    """Create (or re-create) the refusing triggers; idempotent, safe on every migration run."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text(_PG_FUNCTION))
        for table in tables:
            for stmt in _pg_statements(table):
                conn.execute(text(stmt))
    elif dialect == "sqlite":
        for table in tables:
            for stmt in _sqlite_statements(table):
                conn.execute(text(stmt))
    else:
        # Refuse to run the evidence tables where we cannot make them append-only (R10.5).
        raise RuntimeError(f"the audit store supports SQLite and PostgreSQL only, not {dialect}: "
                           "set RADLOOP_DATABASE_URL to one of them")


def install_present(conn: Connection) -> tuple[str, ...]:
    """Guard every append-only table the database has (the migrations call this after upgrading)."""
    present = set(inspect(conn).get_table_names())
    tables = tuple(t for t in APPEND_ONLY_TABLES if t in present)
    if tables:
        install_append_only(conn, tables)
    return tables


def grant_app_role(conn: Connection, role: str, schema: str = "public") -> None:
    """PostgreSQL: the app role reads and writes the schema, but may only INSERT/SELECT evidence rows."""
    quoted_role, quoted_schema = conn.dialect.identifier_preparer.quote(role), conn.dialect.identifier_preparer.quote(schema)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {quoted_schema} TO {quoted_role}"))
    conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {quoted_schema} TO {quoted_role}"))
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quoted_schema} TO {quoted_role}"))
    for table in APPEND_ONLY_TABLES:
        conn.execute(text(f"REVOKE UPDATE, DELETE, TRUNCATE ON {quoted_schema}.{table} FROM {quoted_role}"))


@contextmanager
def deletes_allowed(conn: Connection, table: str) -> Iterator[None]:
    """Run the block with `table`'s DELETE guard off, inside the caller's open transaction.

    The guard is back before the block's transaction can commit; if the block raises,
    the caller rolls back and the DDL goes with it (both databases have transactional DDL),
    so no committed state ever lacks the trigger.
    """
    if table not in APPEND_ONLY_TABLES:
        raise ValueError(f"{table} is not an append-only table")
    dialect = conn.dialect.name
    if dialect == "sqlite":
        raw = conn.connection.dbapi_connection
        if not raw.in_transaction:  # pysqlite opens no transaction before DDL: open it ourselves
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_delete"))
        yield
        install_append_only(conn, (table,))
    elif dialect == "postgresql":
        conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        yield
        conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"))
    else:
        raise RuntimeError(f"the audit store supports SQLite and PostgreSQL only, not {dialect}")
