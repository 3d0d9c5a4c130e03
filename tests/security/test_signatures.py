"""Electronic signatures of report versions (R10.2.4, R8.3.1): bound content, tamper shows, re-signing."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text
from sqlmodel import Session

from core.config import get_settings
from core.db import get_engine
from domain.tables import ReportVersion
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
def test_altering_the_signature_row_shows_as_signature_altered(s: Session, column: str, value: object) -> None:
    _version(s, 1)
    _sign(s, 1)
    s.execute(text(f"UPDATE report_signature SET {column} = :v WHERE accession_number = :a"), {"v": value, "a": ACC})
    s.commit()
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
