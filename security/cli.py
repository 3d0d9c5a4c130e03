"""Security administration from a shell: `python -m security.cli ...` (the `radloop audit verify` of issue 6).

    python -m security.cli audit verify          # exit 1 and the first bad seq when the chain is broken
    python -m security.cli audit replay          # store events spooled while the database was down
    python -m security.cli audit archive --older-than-days 1   # back up the chain as gzip segments
    python -m security.cli audit verify-archive  # check the segments without the database
    python -m security.cli audit purge --older-than-days 183   # remove archived records past retention
    python -m security.cli user create --username li.na --name "李娜" --role radiologist
    python -m security.cli user set-password --username li.na    # asks twice (or --password-stdin)
    python -m security.cli user enrol-totp --username li.na      # prints the otpauth:// URI once
    python -m security.cli check                 # what production mode would refuse

Every change to a person's credentials is itself an audit record (source "cli").
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.config import get_settings
from core.db import session_scope
from domain.enums import Role
from security import accounts, audit_archive, sessions
from security.audit import AuditEvent, AuditTrail, verify_chain
from security.clock import SystemClock
from security.passwords import PasswordRejected
from security.policy import SecurityPolicy
from security.startup import findings


def _operator() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"


def _audit_change(username: str, event_type: str, event_id: str, action: str, detail: dict) -> None:
    AuditTrail.from_settings().record(AuditEvent(
        username=_operator(), role="cli", source="cli", event_type=event_type, event_id=event_id, action=action,
        object_type="user", object_id=username, outcome="success", detail=detail,
    ))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    with session_scope() as s:
        archived = audit_archive.archived_hashes(_archive_dir(args))
        result = verify_chain(s, get_settings().audit_checkpoint_keys, archived)
    spooled = len(AuditTrail.from_settings().spooled())
    print(f"{'OK' if result.ok else 'BROKEN'}: {result.message} "
          f"({result.checked} records, {result.checkpoints} checkpoints checked; {spooled} spooled awaiting replay)")
    if not result.ok:
        print(f"first bad seq: {result.first_bad_seq} ({result.problem})")
    _audit_change("-", "audit_verify", "110101", "E", {"ok": result.ok, "first_bad_seq": result.first_bad_seq})
    return 0 if result.ok else 1


def _archive_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir) if args.dir else get_settings().data_dir / "audit-archive"


def cmd_audit_archive(args: argparse.Namespace) -> int:
    now = datetime.now(timezone.utc)
    with session_scope() as s:
        seg = audit_archive.archive(s, _archive_dir(args), now - timedelta(days=args.older_than_days), now)
    print(f"archived seq {seg.first_seq}..{seg.last_seq} to {seg.file}" if seg else "nothing new to archive")
    return 0


def cmd_audit_verify_archive(args: argparse.Namespace) -> int:
    result = audit_archive.verify_archive(_archive_dir(args))
    print(f"{'OK' if result.ok else 'BROKEN'}: {result.message} ({result.checked} records)")
    if not result.ok:
        print(f"first bad seq: {result.first_bad_seq} ({result.problem})")
    return 0 if result.ok else 1


def cmd_audit_purge(args: argparse.Namespace) -> int:
    """Table owner only on PostgreSQL (it disables the append-only trigger for its one transaction)."""
    now = datetime.now(timezone.utc)
    try:
        with session_scope() as s:
            n = audit_archive.purge(s, _archive_dir(args), now - timedelta(days=args.older_than_days), now,
                                    operator=_operator())
    except audit_archive.PurgeRefused as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    print(f"purged {n} archived audit record(s)")
    return 0


def cmd_audit_replay(_args: argparse.Namespace) -> int:
    n = AuditTrail.from_settings().replay_spool()
    print(f"replayed {n} spooled audit event(s)")
    return 0


def _user(s, username: str):  # noqa: ANN001, ANN202 - tiny local helper
    user = accounts.user_by_username(s, username)
    if user is None:
        raise SystemExit(f"no user {username!r}")
    return user


def cmd_user_create(args: argparse.Namespace) -> int:
    with session_scope() as s:
        user = accounts.create_user(s, args.username, args.name, Role(args.role), args.department)
        print(f"created {user.username} ({user.role}), id {user.id}; next: set-password, enrol-totp")
    _audit_change(args.username, "user_create", "110136", "C", {"role": args.role})
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    first, second = getpass.getpass("new password: "), getpass.getpass("again: ")
    if first != second:
        raise SystemExit("the two entries differ")
    return first


def cmd_user_set_password(args: argparse.Namespace) -> int:
    policy = SecurityPolicy.from_settings(get_settings())
    password = _read_password(args)
    clock = SystemClock()
    try:
        with session_scope() as s:
            user = _user(s, args.username)
            accounts.set_password(s, user, password, clock, policy, must_change=not args.final)
            sessions.end_all_sessions(s, user.id, clock, "password reset")
    except (PasswordRejected, accounts.AccountError) as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    _audit_change(args.username, "password_set", "110137", "U", {"must_change": not args.final})
    print(f"password set for {args.username}" + ("" if args.final else " (to be changed at first login)"))
    return 0


def cmd_user_enrol_totp(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        with session_scope() as s:
            secret = accounts.enrol_totp(s, _user(s, args.username), settings.codec_keys, SystemClock())
    except accounts.AccountError as err:
        print(f"refused: {err}", file=sys.stderr)
        return 2
    from security.totp import provisioning_uri

    _audit_change(args.username, "totp_enrol", "110137", "U", {})
    print(provisioning_uri(secret, args.username, settings.totp_issuer))
    return 0


def cmd_check(_args: argparse.Namespace) -> int:
    with session_scope() as s:
        found = findings(get_settings(), s)
    for f in found:
        print(f"- {f}")
    print("nothing production would refuse" if not found else f"{len(found)} finding(s)")
    return 1 if found else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m security.cli", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(required=True)
    audit = sub.add_parser("audit").add_subparsers(required=True)
    ver = audit.add_parser("verify", help="check the SM3 chain and signed checkpoints (after a purge: from the archive)")
    ver.add_argument("--dir", help="the archive directory (default <data_dir>/audit-archive)")
    ver.set_defaults(fn=cmd_audit_verify)
    audit.add_parser("replay", help="store spooled events").set_defaults(fn=cmd_audit_replay)
    arc = audit.add_parser("archive", help="copy records to a gzip segment under <data_dir>/audit-archive")
    arc.add_argument("--older-than-days", type=float, default=0, help="only records recorded before now - N days")
    arc.add_argument("--dir")
    arc.set_defaults(fn=cmd_audit_archive)
    va = audit.add_parser("verify-archive", help="check every archived segment without the database")
    va.add_argument("--dir")
    va.set_defaults(fn=cmd_audit_verify_archive)
    pu = audit.add_parser("purge", help="remove archived records recorded before now - N days (N >= retention)")
    pu.add_argument("--older-than-days", type=float, required=True)
    pu.add_argument("--dir")
    pu.set_defaults(fn=cmd_audit_purge)
    user = sub.add_parser("user").add_subparsers(required=True)
    c = user.add_parser("create")
    c.add_argument("--username", required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument("--department")
    c.set_defaults(fn=cmd_user_create)
    sp = user.add_parser("set-password")
    sp.add_argument("--username", required=True)
    sp.add_argument("--password-stdin", action="store_true", help="read one line from stdin")
    sp.add_argument("--final", action="store_true", help="do not require a change at first login")
    sp.set_defaults(fn=cmd_user_set_password)
    t = user.add_parser("enrol-totp")
    t.add_argument("--username", required=True)
    t.set_defaults(fn=cmd_user_enrol_totp)
    sub.add_parser("check", help="list what production mode would refuse").set_defaults(fn=cmd_check)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
