"""Production refuses development secrets and demo accounts, at API start-up and in `security.cli check`."""
from __future__ import annotations

import base64
import os

import pytest
from sqlmodel import Session, select

from api.main import create_app
from core.config import get_settings, reset_settings_cache
from core.db import get_engine
from domain.tables import User
from security.startup import InsecureConfiguration, check_production, findings


def _production(monkeypatch: pytest.MonkeyPatch, real_keys: bool) -> None:
    monkeypatch.setenv("RADLOOP_MODE", "production")
    if real_keys:
        monkeypatch.setenv("RADLOOP_CODEC_KEYS", "k1:" + base64.b64encode(os.urandom(32)).decode())
        monkeypatch.setenv("RADLOOP_AUDIT_CHECKPOINT_KEYS", "c1:" + base64.b64encode(os.urandom(32)).decode())
        monkeypatch.setenv("RADLOOP_FIELD_KEYS", "f1:" + base64.b64encode(os.urandom(32)).decode())
        monkeypatch.setenv("RADLOOP_BLIND_INDEX_KEY", base64.b64encode(os.urandom(32)).decode())
        monkeypatch.setenv("RADLOOP_SIGNATURE_KEYS", "s1:" + base64.b64encode(os.urandom(32)).decode())
    reset_settings_cache()


def test_demo_users_and_default_keys_are_all_named(sqlite_database, monkeypatch) -> None:
    _production(monkeypatch, real_keys=False)
    with Session(get_engine()) as s:
        found = findings(get_settings(), s)
        with pytest.raises(InsecureConfiguration, match="refusing to start in production"):
            check_production(get_settings(), s)
    text = "\n".join(found)
    assert "RADLOOP_CODEC_KEYS" in text and "RADLOOP_AUDIT_CHECKPOINT_KEYS" in text
    assert "RADLOOP_FIELD_KEYS" in text and "RADLOOP_BLIND_INDEX_KEY" in text
    assert "RADLOOP_SIGNATURE_KEYS" in text
    assert "development tokens: " in text and "auditor" in text
    assert "demo accounts present" in text


async def test_the_api_does_not_start(sqlite_database, monkeypatch) -> None:
    _production(monkeypatch, real_keys=True)  # keys fixed, demo users still there
    app = create_app()
    with pytest.raises(InsecureConfiguration, match="demo accounts present"):
        async with app.router.lifespan_context(app):
            pass


async def test_a_clean_production_install_starts(sqlite_database, monkeypatch) -> None:
    with Session(get_engine()) as s:
        for user in s.exec(select(User)).all():
            user.active = False  # demo accounts disabled (kept for the history they appear in)
            s.add(user)
        s.add(User(id="u-8f2c", username="li.na", display_name="李娜", role="radiologist"))
        s.commit()
    _production(monkeypatch, real_keys=True)
    app = create_app()
    async with app.router.lifespan_context(app):
        pass
    with Session(get_engine()) as s:
        assert findings(get_settings(), s) == []


async def test_development_mode_is_not_checked(sqlite_database) -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        pass
