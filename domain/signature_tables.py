"""Electronic signatures of report versions (R10.2.4, R8.3.1): who signed what, when, sealed.

A row binds the signer, the signing time and a digest of the exact canonical
content of one report version (security.signatures). The row itself is sealed
with HMAC-SM3 under a server key, so changing the row (signer, time, digest)
shows on verification as surely as changing the report does. The table is
append-only in the database (security.audit_guard): a recall or correction adds a
new signature naming the version it supersedes, it never edits or deletes one.
"""
from __future__ import annotations

from sqlalchemy import Column, Text, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from security.audit_guard import install_append_only


class ReportSignature(SQLModel, table=True):
    __tablename__ = "report_signature"
    __table_args__ = (UniqueConstraint("accession_number", "version", name="uq_report_signature"),)
    id: int | None = Field(default=None, primary_key=True)
    accession_number: str = Field(index=True)
    version: int
    signer_id: str
    signer_name: str = ""
    signer_role: str = ""
    signed_at: str = Field(description="ISO-8601 UTC with microseconds, 'Z': the exact text the seal covers")
    digest_alg: str = Field(description="sm3 | sha256")
    content_digest: str = Field(description="Hex digest of the version's canonical content at signing")
    supersedes_version: int | None = Field(default=None, description="The valid version this signature replaced (correction)")
    key_id: str
    seal: str = Field(sa_column=Column(Text, nullable=False), description="HMAC-SM3 over the signature statement")


# `metadata.create_all` (tests, tools) gets the append-only triggers too; migrations
# install them in migrations/env.py.
event.listen(ReportSignature.__table__, "after_create",  # type: ignore[attr-defined]
             lambda target, connection, **_kw: install_append_only(connection, (target.name,)))
