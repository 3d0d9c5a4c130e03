"""Refuse to run a production center with known secrets or demo accounts (R10.2.3 "no default accounts").

Checked when the API, the worker and the DICOM and HL7 listeners start (and by
`python -m security.cli check`): in production mode the codec, audit checkpoint,
identifier-field and blind-index keys must not be the development ones, and no user may still hold a development token or be one of
the seeded demo accounts. Every finding is listed at once.
"""
from __future__ import annotations

import logging

from sqlmodel import Session, col, select

from core.config import (
    DEV_AUDIT_CHECKPOINT_KEY,
    DEV_BLIND_INDEX_KEY,
    DEV_CODEC_KEY,
    DEV_FIELD_KEY,
    DEV_SIGNATURE_KEY,
    Settings,
)
from domain.enums import Role
from domain.tables import User

DEV_TOKEN_PREFIX = "dev-"


class InsecureConfiguration(RuntimeError):
    def __init__(self, findings: list[str]) -> None:
        super().__init__("refusing to start in production: " + "; ".join(findings))
        self.findings = findings


def _dev_token_hashes(usernames: list[str]) -> dict[str, str]:
    import hashlib

    return {hashlib.sha256(f"{DEV_TOKEN_PREFIX}{u}".encode()).hexdigest(): u for u in usernames}


def findings(settings: Settings, session: Session) -> list[str]:
    """What would make this installation insecure in production (empty when none)."""
    out = []
    if DEV_CODEC_KEY in settings.codec_keys:
        out.append("RADLOOP_CODEC_KEYS still holds the development key")
    if DEV_AUDIT_CHECKPOINT_KEY in settings.audit_checkpoint_keys:
        out.append("RADLOOP_AUDIT_CHECKPOINT_KEYS still holds the development key")
    if DEV_FIELD_KEY in settings.field_keys:
        out.append("RADLOOP_FIELD_KEYS still holds the development key")
    if settings.blind_index_key == DEV_BLIND_INDEX_KEY:
        out.append("RADLOOP_BLIND_INDEX_KEY is the development key")
    if DEV_SIGNATURE_KEY in settings.signature_keys:
        out.append("RADLOOP_SIGNATURE_KEYS still holds the development key")
    users = session.exec(select(User).where(User.active == True)).all()  # noqa: E712
    dev_hashes = _dev_token_hashes([u.username for u in users])
    with_dev_token = sorted(u.username for u in users if u.api_token_sha256 in dev_hashes)
    if with_dev_token:
        out.append(f"users with development tokens: {', '.join(with_dev_token)}")
    demo_ids = {f"u-{r.value}" for r in Role}
    demo = session.exec(select(User.username).where(col(User.id).in_(demo_ids), User.active == True)).all()  # noqa: E712
    if demo:
        out.append(f"demo accounts present: {', '.join(sorted(demo))}")
    return out


def check_production(settings: Settings, session: Session) -> None:
    """Raise InsecureConfiguration in production mode when anything is found; a no-op in development."""
    if not settings.is_production:
        return
    found = findings(settings, session)
    if found:
        raise InsecureConfiguration(found)


def refuse_insecure_start(component: str) -> None:
    """First thing every entry point does (API, worker, DICOM and HL7 listeners): in production,
    any finding stops the process before it serves anything; in development, nothing happens."""
    from core.config import get_settings
    from core.db import session_scope

    settings = get_settings()
    if not settings.is_production:
        return
    with session_scope() as session:
        try:
            check_production(settings, session)
        except InsecureConfiguration as err:
            logging.getLogger("radloop.startup").error("%s: %s", component, err)
            raise
