"""Electronic signatures of report versions (R10.2.4, R8.3.1): bound content, tamper shows, re-signing;
signature rows are append-only in the database, and one deleted anyway shows as missing (R10.5)."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, SQLModel

from core.config import get_settings
from core.db import get_engine, make_engine
from domain.signature_tables import ReportSignature
from domain.tables import ReportVersion
from security.audit_guard import grant_app_role
from security.signatures import (
    SignatureError,
    canonical_content,
    content_digest,
    sign_version,
    verify_accession,
    verify_version,
)

AT = datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=timezone.utc)
ACC = "A2026030200001"


def _version(s: Session, n: int, findings: str = "右肺上叶结节 8 mm。", **kw) -> ReportVersion:
    row = ReportVersion(accession_number=ACC, version=n, tier=kw.pop("tier", "final"), findings=findings,
                        impression="考虑炎性结节。", recommendation="3 个月后复查。", author_id="u-senior_radiologist",
                        author_role="senior_radiologist", **kw)
    s.add(row)
    s.commit()
    return row


@pytest.fixture
def s(database: str):
    with Session(get_engine(), expire_on_commit=False) as session:
        yield session


@pytest.fixture
def dba(s: Session) -> Iterator[sa.Connection]:
    """A connection of someone with the owner's rights who first switches the append-only triggers off,
    as only a database administrator could."""
    engine = get_engine()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE report_signature DISABLE TRIGGER USER"))
        else:
            for trig in ("report_signature_no_update", "report_signature_no_delete"):
                conn.execute(text(f"DROP TRIGGER {trig}"))
    with engine.begin() as conn:
        yield conn


def _sign(s: Session, n: int, **kw):
    keys = get_settings().signature_keys
    sig, created = sign_version(s, ACC, n, "u-senior_radiologist", "Senior", "senior_radiologist", AT, keys, **kw)
    s.commit()
    return sig, created


def test_signature_binds_signer_time_and_content_digest(s: Session) -> None:
    v = _version(s, 1)
    sig, created = _sign(s, 1)
    assert created and sig.signer_id == "u-senior_radiologist" and sig.signed_at == "2026-03-02T09:30:00.123456Z"
    assert sig.digest_alg == "sm3" and sig.content_digest == content_digest(v, "sm3") and len(sig.content_digest) == 64
    check = verify_version(s, ACC, 1, get_settings().signature_keys)
    assert check is not None and check.status == "intact" and check.seal_valid is True
    assert check.current_digest == check.signed_digest


def test_signing_twice_keeps_the_first_signature(s: Session) -> None:
    _version(s, 1)
    first, _ = _sign(s, 1)
    again, created = _sign(s, 1)
    assert not created and again.id == first.id and again.seal == first.seal


@pytest.mark.parametrize(("column", "value"), [
    ("findings", "右肺上叶结节 5 mm。"), ("impression", "考虑恶性。"), ("recommendation", ""), ("critical", True),
])
def test_changing_signed_content_shows_as_content_changed(s: Session, column: str, value: object) -> None:
    _version(s, 1)
    _sign(s, 1)
    s.execute(text(f"UPDATE report_version SET {column} = :v WHERE accession_number = :a"), {"v": value, "a": ACC})
    s.commit()
    check = verify_version(s, ACC, 1, get_settings().signature_keys)
    assert check is not None and check.status == "content_changed", check
    assert check.seal_valid is True and check.current_digest != check.signed_digest


@pytest.mark.parametrize(("column", "value"), [
    ("signer_id", "u-radiologist"), ("signed_at", "2026-03-01T09:30:00.123456Z"), ("content_digest", "0" * 64),
    ("supersedes_version", 7),
])
def test_altering_the_signature_row_shows_as_signature_altered(s: Session, dba, column: str, value: object) -> None:
    _version(s, 1)
    _sign(s, 1)
    dba.execute(text(f"UPDATE report_signature SET {column} = :v WHERE accession_number = :a"), {"v": value, "a": ACC})
    dba.commit()
    s.expire_all()
    check = verify_version(s, ACC, 1, get_settings().signature_keys)
    assert check is not None and check.status == "signature_altered" and check.seal_valid is False


def test_a_forged_seal_under_another_key_does_not_verify(s: Session) -> None:
    _version(s, 1)
    other = "k9:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    sign_version(s, ACC, 1, "u-x", "X", "senior_radiologist", AT, other)
    s.commit()
    check = verify_version(s, ACC, 1, get_settings().signature_keys)
    assert check is not None and check.status == "signature_altered"
    # rotating keys: the old key kept (second) still verifies what it sealed
    rotated = f"new:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=,{other}"
    assert verify_version(s, ACC, 1, rotated).status == "intact"  # type: ignore[union-attr]


def test_sha256_can_be_chosen_and_unknown_digests_are_refused(s: Session) -> None:
    v = _version(s, 1)
    sig, _ = _sign(s, 1, digest_alg="sha256")
    assert sig.digest_alg == "sha256" and sig.content_digest == content_digest(v, "sha256")
    assert verify_version(s, ACC, 1, get_settings().signature_keys).status == "intact"  # type: ignore[union-attr]
    _version(s, 2)
    with pytest.raises(SignatureError, match="unknown digest"):
        _sign(s, 2, digest_alg="md5")


def test_unsigned_and_missing_versions(s: Session) -> None:
    _version(s, 1)
    keys = get_settings().signature_keys
    assert verify_version(s, ACC, 1, keys).status == "unsigned"  # type: ignore[union-attr]
    assert verify_version(s, ACC, 9, keys) is None
    with pytest.raises(SignatureError, match="no report version 9"):
        sign_version(s, ACC, 9, "u-x", "X", "senior_radiologist", AT, keys)


def test_re_signing_after_correction_links_the_signatures(s: Session) -> None:
    _version(s, 1)
    _sign(s, 1)
    s.execute(text("UPDATE report_version SET status = 'recalled', recall_reason = 'laterality' WHERE version = 1"))
    _version(s, 2, findings="左肺上叶结节 8 mm。", tier="amended")
    _sign(s, 2, supersedes_version=1)
    checks = verify_accession(s, ACC, get_settings().signature_keys)
    assert [(c.version, c.status, c.supersedes_version, c.superseded_by_version) for c in checks] == [
        (1, "intact", None, 2), (2, "intact", 1, None)]
    assert "recalled (laterality)" in checks[0].message


def test_canonical_content_is_the_exact_text() -> None:
    v = ReportVersion(accession_number=ACC, version=3, tier="final", findings="a", impression="b",
                      recommendation="", author_id="x", author_role="y", critical=True, critical_finding="气胸")
    assert canonical_content(v) == (
        '{"accession_number":"A2026030200001","critical":true,"critical_finding":"气胸","findings":"a",'
        '"impression":"b","recommendation":"","version":3}').encode()


# ---- append-only in the database (R10.5 "protected") ---------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE report_signature SET signer_id = 'u-radiologist'", "DELETE FROM report_signature"])
def test_the_database_refuses_to_change_or_delete_signatures(s: Session, statement: str) -> None:
    """Through the real migrations, on SQLite and PostgreSQL: the application's own connection is refused."""
    _version(s, 1)
    sig, _ = _sign(s, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        with get_engine().begin() as conn:
            conn.execute(text(statement))
    s.expire_all()
    assert verify_version(s, ACC, 1, get_settings().signature_keys).status == "intact"  # type: ignore[union-attr]


def test_the_orm_cannot_edit_a_signature_either(s: Session) -> None:
    _version(s, 1)
    sig, _ = _sign(s, 1)
    sig.signed_at = "2026-03-01T00:00:00.000000Z"
    s.add(sig)
    with pytest.raises(DBAPIError, match="append-only"):
        s.commit()
    s.rollback()


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_postgres_refuses_truncating_signatures(s: Session) -> None:
    _version(s, 1)
    _sign(s, 1)
    with pytest.raises(DBAPIError, match="append-only"):
        with get_engine().begin() as conn:
            conn.execute(text("TRUNCATE report_signature"))


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_postgres_app_role_may_only_insert_and_read_signatures(s: Session, database: str) -> None:
    """Second layer: with the triggers off, the app's own role still cannot UPDATE or DELETE, but signs."""
    _version(s, 1)
    _sign(s, 1)
    _version(s, 2)
    role = f"radloop_app_{uuid.uuid4().hex[:8]}"
    engine = get_engine()
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        grant_app_role(conn, role, schema)
        conn.execute(text("ALTER TABLE report_signature DISABLE TRIGGER USER"))
    as_app = make_engine(database)

    @sa.event.listens_for(as_app, "connect")
    def _as_role(dbapi_conn, _record) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f'SET ROLE "{role}"')

    try:
        with as_app.connect() as conn:
            for statement in ("UPDATE report_signature SET signer_id = 'u-x'", "DELETE FROM report_signature"):
                with pytest.raises(DBAPIError, match="permission denied"):
                    with conn.begin_nested():
                        conn.execute(text(statement))
            conn.rollback()
        with Session(as_app) as app_session:  # signing is an INSERT: still allowed
            sign_version(app_session, ACC, 2, "u-senior_radiologist", "Senior", "senior_radiologist", AT,
                         get_settings().signature_keys)
            app_session.commit()
    finally:
        as_app.dispose()
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE report_signature ENABLE TRIGGER USER"))
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    assert [c.status for c in verify_accession(s, ACC, get_settings().signature_keys)] == ["intact", "intact"]


def test_create_all_installs_the_guard_too(tmp_path) -> None:
    """Tools and tests that build the schema with `create_all` get the same triggers as the migrations."""
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    SQLModel.metadata.create_all(engine, tables=[ReportSignature.__table__])  # type: ignore[attr-defined]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO report_signature (accession_number, version, signer_id, signer_name, "
                          "signer_role, signed_at, digest_alg, content_digest, key_id, seal) "
                          "VALUES ('A1', 1, 'u', '', '', 't', 'sm3', 'd', 'k', 's')"))
    for statement in ("UPDATE report_signature SET seal = 'x'", "DELETE FROM report_signature"):
        with pytest.raises(DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(text(statement))
    engine.dispose()


# ---- a signature deleted anyway (a DBA around the guard) ------------------------------------------


def _signed(s: Session, n: int, **kw) -> None:
    """A version as `activities.reports.sign_report` leaves it: valid, with signer and time on its own row."""
    _version(s, n, status="valid", signed_by="u-senior_radiologist", signed_at=AT, **kw)
    _sign(s, n, **({"supersedes_version": n - 1} if n > 1 else {}))


def test_a_deleted_signature_shows_as_missing_not_unsigned(s: Session, dba) -> None:
    _signed(s, 1)
    dba.execute(text("DELETE FROM report_signature WHERE accession_number = :a"), {"a": ACC})
    dba.commit()
    s.expire_all()
    check = verify_version(s, ACC, 1, get_settings().signature_keys)
    assert check is not None and check.status == "signature_missing", check
    assert "signed by u-senior_radiologist at 2026-03-02T09:30:00.123456Z" in check.message
    assert (check.signer_id, check.signed_at) == ("u-senior_radiologist", "2026-03-02T09:30:00.123456Z")
    # the accession's list names it too, though no signature row is left
    assert [(c.version, c.status) for c in verify_accession(s, ACC, get_settings().signature_keys)] == [
        (1, "signature_missing")]


def test_the_chain_of_re_signatures_names_a_deleted_one_even_with_the_report_row_wiped(s: Session, dba) -> None:
    """Deleting v1's signature and also erasing every trace on v1's own row: v2's sealed signature
    still says it superseded v1, so v1 reads as signed-and-missing."""
    _signed(s, 1)
    s.execute(text("UPDATE report_version SET status = 'recalled' WHERE version = 1"))
    s.commit()
    _signed(s, 2, findings="左肺上叶结节 8 mm。", tier="amended")
    dba.execute(text("DELETE FROM report_signature WHERE version = 1"))
    dba.execute(text("UPDATE report_version SET status = 'working', signed_by = NULL, signed_at = NULL "
                     "WHERE version = 1"))
    dba.commit()
    s.expire_all()
    checks = verify_accession(s, ACC, get_settings().signature_keys)
    assert [(c.version, c.status) for c in checks] == [(1, "signature_missing"), (2, "intact")]
    assert checks[0].superseded_by_version == 2 and "version 2 names it" in checks[0].message


def test_a_never_signed_version_stays_unsigned(s: Session) -> None:
    _signed(s, 1)
    _version(s, 2, findings="draft", tier="preliminary")
    assert verify_version(s, ACC, 2, get_settings().signature_keys).status == "unsigned"  # type: ignore[union-attr]
    assert [c.version for c in verify_accession(s, ACC, get_settings().signature_keys)] == [1]
