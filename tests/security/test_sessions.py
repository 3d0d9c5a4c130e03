"""Login and sessions with a clock we move (R10.2.3): two factors, lockout 5-in-5 -> 15 min,
idle timeout 30 min, logout, concurrent-session limits, expired passwords."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from core.config import get_settings
from domain.enums import Role
from domain.security_tables import LoginAttempt, UserSession
from security import sessions, totp
from security.clock import ManualClock
from security.policy import SecurityPolicy
from security.sessions import AccountLocked, LoginRefused, PasswordChangeRequired, SessionRefused

from tests.support.people import Person, enrol


def _login(db: Session, clock: ManualClock, p: Person, password: str | None = None, code: str | None = None,
           policy: SecurityPolicy | None = None) -> sessions.LoggedIn:
    try:
        done = sessions.login(db, p.username, password or p.password, code or totp.code_at(p.totp_secret, clock.now()),
                              clock, "10.0.0.7", policy or SecurityPolicy(), get_settings().codec_keys)
    except LoginRefused:
        db.commit()
        raise
    db.commit()
    return done


def _next_code_window(clock: ManualClock) -> None:
    """Move past the current TOTP step: each code is accepted once."""
    clock.advance(timedelta(seconds=31))


def test_both_factors_open_a_session(db, clock, person) -> None:
    done = _login(db, clock, person)
    assert done.token.startswith("rls_") and done.user.username == "li.na"
    row = db.get(UserSession, sessions.token_hash(done.token))
    assert row is not None and row.ended_at is None
    assert done.token not in str(row.model_dump())  # only the hash is stored
    user, _ = sessions.authenticate(db, done.token, clock, SecurityPolicy())
    assert user.username == "li.na"


@pytest.mark.parametrize("what", ["password", "code", "username"])
def test_any_wrong_factor_is_refused_without_saying_which(db, clock, person, what) -> None:
    kwargs = {"password": "Wrong-Passw0rd!"} if what == "password" else {"code": "000000"} if what == "code" else {}
    p = Person("nobody", person.password, person.totp_secret, person.role) if what == "username" else person
    with pytest.raises(LoginRefused) as refused:
        _login(db, clock, p, **kwargs)
    assert refused.value.public == "invalid username, password or code"
    attempt = db.exec(select(LoginAttempt).where(LoginAttempt.username == p.username)).one()
    assert not attempt.success and attempt.reason and attempt.source == "10.0.0.7"


def test_a_code_works_once(db, clock, person) -> None:
    code = totp.code_at(person.totp_secret, clock.now())
    _login(db, clock, person, code=code)
    with pytest.raises(LoginRefused) as refused:
        _login(db, clock, person, code=code)
    assert refused.value.reason == "wrong or reused TOTP code"


def test_privileged_roles_cannot_skip_the_second_factor(db, clock) -> None:
    from security import accounts

    admin = accounts.create_user(db, "feng", "Feng", Role.security_admin, None)
    accounts.set_password(db, admin, "Secur1ty-Admin-Pw", clock, SecurityPolicy())
    db.commit()
    with pytest.raises(LoginRefused) as refused:
        sessions.login(db, "feng", "Secur1ty-Admin-Pw", "123456", clock, "", SecurityPolicy(), get_settings().codec_keys)
    assert refused.value.reason == "no second factor enrolled"


def test_five_failures_in_five_minutes_lock_for_fifteen(db, clock, person) -> None:
    for _ in range(5):
        with pytest.raises(LoginRefused):
            _login(db, clock, person, password="Wrong-Passw0rd!")
        clock.advance(timedelta(seconds=50))  # 5 failures within 4 minutes
    with pytest.raises(AccountLocked) as locked:
        _login(db, clock, person)  # right password and code, still locked
    assert locked.value.status_code == 423
    clock.advance(timedelta(minutes=14))
    with pytest.raises(AccountLocked):
        _login(db, clock, person)
    clock.advance(timedelta(minutes=1, seconds=30))
    assert _login(db, clock, person).user.username == "li.na"


def test_failures_spread_beyond_the_window_do_not_lock(db, clock, person) -> None:
    for _ in range(6):
        with pytest.raises(LoginRefused) as refused:
            _login(db, clock, person, password="Wrong-Passw0rd!")
        assert not isinstance(refused.value, AccountLocked)
        clock.advance(timedelta(seconds=80))  # only 4 ever fall inside any 5-minute window
    assert _login(db, clock, person).user.username == "li.na"


def test_a_success_clears_the_count(db, clock, person) -> None:
    for _ in range(4):
        with pytest.raises(LoginRefused):
            _login(db, clock, person, password="Wrong-Passw0rd!")
    _login(db, clock, person)
    _next_code_window(clock)
    for _ in range(4):
        with pytest.raises(LoginRefused):
            _login(db, clock, person, password="Wrong-Passw0rd!")
    assert _login(db, clock, person)


def test_idle_timeout_ends_the_session_server_side(db, clock, person) -> None:
    policy = SecurityPolicy()
    token = _login(db, clock, person).token
    for _ in range(3):  # used every 29 minutes: stays alive well past 30 minutes from login
        clock.advance(timedelta(minutes=29))
        sessions.authenticate(db, token, clock, policy)
        db.commit()
    clock.advance(timedelta(minutes=30, seconds=1))
    with pytest.raises(SessionRefused, match="idle"):
        sessions.authenticate(db, token, clock, policy)
    db.commit()
    clock.advance(timedelta(seconds=-3600))  # even if the clock went back, an ended session stays ended
    with pytest.raises(SessionRefused, match=r"session ended \(idle\)"):
        sessions.authenticate(db, token, clock, policy)


def test_sessions_end_at_their_maximum_age_even_when_used(db, clock, person) -> None:
    policy = SecurityPolicy(max_session_age=timedelta(hours=1))
    token = _login(db, clock, person).token
    for _ in range(3):
        clock.advance(timedelta(minutes=25))
        with pytest.raises(SessionRefused, match="expired") if _ == 2 else _nullcontext():
            sessions.authenticate(db, token, clock, policy)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_logout_ends_the_session(db, clock, person) -> None:
    token = _login(db, clock, person).token
    assert sessions.logout(db, token, clock)
    db.commit()
    with pytest.raises(SessionRefused, match="logout"):
        sessions.authenticate(db, token, clock, SecurityPolicy())
    assert not sessions.logout(db, token, clock)


def test_concurrent_sessions_are_limited_oldest_first(db, clock, person) -> None:
    tokens = []
    for _ in range(4):
        tokens.append(_login(db, clock, person).token)
        _next_code_window(clock)
    with pytest.raises(SessionRefused, match="superseded"):
        sessions.authenticate(db, tokens[0], clock, SecurityPolicy())
    for token in tokens[1:]:
        sessions.authenticate(db, token, clock, SecurityPolicy())


def test_auditors_and_admins_hold_one_session(db, clock) -> None:
    auditor = enrol(db, clock, "zheng", Role.auditor)
    first = _login(db, clock, auditor).token
    _next_code_window(clock)
    second = _login(db, clock, auditor).token
    with pytest.raises(SessionRefused, match="superseded"):
        sessions.authenticate(db, first, clock, SecurityPolicy())
    sessions.authenticate(db, second, clock, SecurityPolicy())


def test_machine_accounts_do_not_log_in(db, clock) -> None:
    from security import accounts
    from domain.security_tables import UserCredential
    from security.passwords import hash_password

    his = accounts.create_user(db, "his-b", "HIS B", Role.his_system, None)
    db.add(UserCredential(user_id=his.id, password_hash=hash_password("Machine-Passw0rd"), password_changed_at=clock.now()))
    db.commit()
    with pytest.raises(LoginRefused) as refused:
        sessions.login(db, "his-b", "Machine-Passw0rd", "123456", clock, "", SecurityPolicy(), get_settings().codec_keys)
    assert refused.value.reason == "machine account: no interactive login"


def test_an_expired_password_must_be_changed_first(db, clock, person) -> None:
    clock.advance(timedelta(days=91))
    with pytest.raises(PasswordChangeRequired, match="expired") as refused:
        _login(db, clock, person)
    assert refused.value.status_code == 403
