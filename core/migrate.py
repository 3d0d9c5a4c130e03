"""Bring a database to the newest schema with Alembic, in-process (launcher, tests, containers).

Tables are still changing, so the one initial revision is regenerated rather than stacked on.
To regenerate migrations/versions/0001_initial.py from domain/tables.py, from the repo root:

    rm -f /tmp/radloop-gen.db migrations/versions/0001_initial.py && .venv/bin/alembic -x url=sqlite:////tmp/radloop-gen.db revision --autogenerate --rev-id 0001 -m initial

Once a real database holds data, stop regenerating and add revisions on top instead:
    .venv/bin/alembic revision --autogenerate -m "<what changed>"
"""
from __future__ import annotations

from alembic import command
from alembic.config import Config

from core.config import REPO_ROOT, get_settings


def alembic_config(url: str | None = None) -> Config:
    """Config for the repo's alembic.ini; `url` defaults to the settings' database URL."""
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    # ConfigParser interpolates '%': escape it (URLs carry %-encoded options).
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().resolved_database_url).replace("%", "%%"))
    cfg.attributes["configure_logger"] = False  # keep the caller's logging as it is
    return cfg


def upgrade_head(url: str | None = None) -> None:
    """Apply every migration not yet applied; a no-op on an up-to-date database."""
    command.upgrade(alembic_config(url), "head")


if __name__ == "__main__":
    upgrade_head()
