"""PIN and password checks, with locks after repeated wrong guesses per person, kind and device,
and budgets of strangers' guesses per site and per device."""
from __future__ import annotations

import datetime as dt

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import object_session

from werkzeug.security import check_password_hash

from app.errors import OperationError
from app.models import SignInBudget, SignInGuard, Staff



class PinLocked(OperationError):
    """Too many wrong PINs for this person; ``seconds`` until they may try again."""

    def __init__(self, seconds: int, checked: bool = False):
        self.seconds = seconds
        #: Whether the secret was checked (the wrong guess that locked), or refused unchecked.
        self.checked = checked
        super().__init__(_("Too many wrong PINs. Try again in %(seconds)s seconds.",
                           seconds=seconds))


#: The guard row for every device a person has not signed in on before.
OTHER_DEVICES = ""


def _insert(session, model):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def _guarded_device(session, staff: Staff, kind: str, device_id: str | None) -> str:
    """The device's own guard if the person has signed in on it this way, else everyone else's."""
    if device_id and session.scalar(select(SignInGuard.trusted_at).where(
            SignInGuard.staff_id == staff.id, SignInGuard.kind == kind,
            SignInGuard.device_id == device_id)) is not None:
        return device_id
    return OTHER_DEVICES


def _budgets(staff: Staff, kind: str, device_id: str | None) -> list[tuple[str, int]]:
    """The shared budgets a stranger's guess at ``staff`` spends: the site's, the device's."""
    cfg = current_app.config
    scopes = [(f"device:{device_id}:{kind}", cfg["BRIGADE_DEVICE_GUESSES"])] if device_id else []
    # The device's first: a browser over its own budget spends none of the site's.
    return scopes + [(f"site:{staff.site_id}:{kind}", cfg["BRIGADE_SITE_GUESSES"])]


def _take_budgets(session, scopes: list[tuple[str, int]], now: dt.datetime) -> int | None:
    """Spend one guess of each budget (a fixed window each); None when all had one left, else
    the seconds until the first one that had not refills. One UPDATE per budget, as for guards."""
    window = dt.timedelta(seconds=current_app.config["BRIGADE_GUESS_WINDOW_SECONDS"])
    for scope, limit in scopes:
        session.execute(_insert(session, SignInBudget).values(
            scope=scope, window_start=now, used=0).on_conflict_do_nothing())
        stale = SignInBudget.window_start <= now - window
        taken = session.execute(
            update(SignInBudget).where(SignInBudget.scope == scope,
                                       or_(stale, SignInBudget.used < limit))
            .values(used=case((stale, 1), else_=SignInBudget.used + 1),
                    window_start=case((stale, now), else_=SignInBudget.window_start))
            .returning(SignInBudget.used)).scalar_one_or_none()
        if taken is None:
            start = session.scalar(select(SignInBudget.window_start)
                                   .where(SignInBudget.scope == scope))
            return int(max((start + window - now).total_seconds(), 0)) + 1
    return None


def _refund_budgets(session, scopes: list[tuple[str, int]]) -> None:
    """The right secret was not a guess: give its budget back."""
    for scope, _limit in scopes:
        session.execute(update(SignInBudget).where(SignInBudget.scope == scope,
                                                   SignInBudget.used > 0)
                        .values(used=SignInBudget.used - 1))


def reserve_attempt(staff: Staff, kind: str, device_id: str | None, now: dt.datetime,
                    max_tries: int, lock_seconds: int) -> tuple[str, int]:
    """Count this attempt as a wrong one *before* the secret is checked, and commit that.

    One UPDATE that takes an attempt only while the guard is not locked and has attempts left,
    so guesses sent in parallel — from any number of server processes — cannot all pass a
    check made before any of them was counted: at most ``max_tries`` secrets are checked per
    lock window and guard. Returns (the guard's device, this attempt's number); raises
    PinLocked, unchecked, when none is left.
    """
    session = object_session(staff)
    device = _guarded_device(session, staff, kind, device_id)
    if device == OTHER_DEVICES:
        # A browser the person has not used: it also spends the site's and the device's
        # budgets, so a few guesses at each of many people run out as fast as many at one.
        wait = _take_budgets(session, _budgets(staff, kind, device_id), now)
        if wait is not None:
            session.commit()
            raise PinLocked(wait)
    session.execute(_insert(session, SignInGuard).values(
        staff_id=staff.id, kind=kind, device_id=device, failed=0).on_conflict_do_nothing())
    guard = ((SignInGuard.staff_id == staff.id) & (SignInGuard.kind == kind)
             & (SignInGuard.device_id == device))
    taken = session.execute(
        update(SignInGuard).where(guard, SignInGuard.failed < max_tries,
                                  or_(SignInGuard.locked_until.is_(None),
                                      SignInGuard.locked_until <= now))
        .values(failed=SignInGuard.failed + 1, locked_until=None)
        .returning(SignInGuard.failed)).scalar_one_or_none()
    if taken is None:
        locked_until = session.scalar(select(SignInGuard.locked_until).where(guard))
        session.commit()
        left = (locked_until - now).total_seconds() if locked_until is not None else lock_seconds
        raise PinLocked(int(max(left, 0)) + 1)
    session.commit()  # counted before the slow hash, where every other guess can see it
    return device, taken


def settle_attempt(staff: Staff, kind: str, guarded: tuple[str, int], ok: bool,
                   device_id: str | None, now: dt.datetime, max_tries: int,
                   lock_seconds: int) -> bool:
    """The right secret clears its guard and makes this device the person's own for this kind
    of secret; the ``max_tries``-th wrong one locks the guard."""
    session = object_session(staff)
    device, attempt = guarded
    guard = ((SignInGuard.staff_id == staff.id) & (SignInGuard.kind == kind)
             & (SignInGuard.device_id == device))
    if ok:
        session.execute(update(SignInGuard).where(guard).values(failed=0, locked_until=None))
        if device == OTHER_DEVICES:
            _refund_budgets(session, _budgets(staff, kind, device_id))
        if device_id:
            stmt = _insert(session, SignInGuard).values(staff_id=staff.id, kind=kind,
                                                        device_id=device_id, failed=0,
                                                        trusted_at=now)
            session.execute(stmt.on_conflict_do_update(
                index_elements=["staff_id", "kind", "device_id"],
                set_={"trusted_at": now, "failed": 0, "locked_until": None}))
        return True
    if attempt >= max_tries:
        session.execute(update(SignInGuard).where(guard).values(
            failed=0, locked_until=now + dt.timedelta(seconds=lock_seconds)))
        raise PinLocked(lock_seconds, checked=True)
    return False


def check_pin(staff: Staff, pin: str, now: dt.datetime, max_tries: int, lock_seconds: int,
              device_id: str | None = None) -> bool:
    """True for the right PIN; counts wrong ones and locks (this device's, or strangers',
    guard) after ``max_tries``. Commits the attempt's reservation itself (see
    reserve_attempt); the caller commits the rest."""
    guarded = reserve_attempt(staff, "pin", device_id, now, max_tries, lock_seconds)
    return settle_attempt(staff, "pin", guarded, staff.check_pin(pin or ""), device_id, now,
                          max_tries, lock_seconds)


#: A hash of nobody's password, with Werkzeug's default scrypt cost, made once (not a secret).
_STAND_IN_HASH = ("scrypt:32768:8:1$ubI7op4vlF45khpK$51962cc65f5e651349e7772a1861be4634289415f1ec31423a94addca338bd59db213bd90a46f557cf213a7341f34b8bd84c8937581ba027c2481ecc855191cf")


def spend_a_password_check(password: str) -> None:
    """As long as checking a real account's password: an unknown email or a locked account
    must not answer faster than a real one (which would tell an attacker it exists)."""
    check_password_hash(_STAND_IN_HASH, password or "")


def check_password(staff: Staff, password: str, now: dt.datetime, max_tries: int,
                   lock_seconds: int, device_id: str | None = None) -> bool:
    """As ``check_pin``, for the laptop password, with guards of its own: wrong passwords do
    not lock the PIN."""
    guarded = reserve_attempt(staff, "password", device_id, now, max_tries, lock_seconds)
    return settle_attempt(staff, "password", guarded, staff.check_password(password or ""),
                          device_id, now, max_tries, lock_seconds)
