"""Alembic environment: RadLoop's SQLModel tables against the configured database.

URL precedence: `alembic -x url=...` > `sqlalchemy.url` set by core.migrate > core.config
settings (RADLOOP_DATABASE_URL or the SQLite file under the data directory).
"""
from __future__ import annotations

from logging.config import fileConfig
from pathlib import Path

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import domain.schema  # noqa: F401 - registers every table on SQLModel.metadata
from core.config import get_settings

config = context.config

# Only the CLI configures logging; called in-process (tests, launcher) we leave logging alone.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def database_url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or get_settings().resolved_database_url
    )


def _options(url: str) -> dict:
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    return {
        "target_metadata": target_metadata,
        "render_as_batch": make_url(url).get_backend_name() == "sqlite",
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    url = database_url()
    context.configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"}, **_options(url))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, **_options(url))
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
