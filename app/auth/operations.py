"""PIN checks with a per-person lock after repeated wrong guesses."""
from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.orm import object_session

from werkzeug.security import check_password_hash

from app.errors import OperationError
from app.models import Staff



class PinLocked(OperationError):
    """Too many wrong PINs for this person; ``seconds`` until they may try again."""

    def __init__(self, seconds: int, checked: bool = False):
        self.seconds = seconds
        #: Whether the secret was checked (the wrong guess that locked), or refused unchecked.
        self.checked = checked
        super().__init__(_("Too many wrong PINs. Try again in %(seconds)s seconds.",
                           seconds=seconds))


def reserve_attempt(staff: Staff, now: dt.datetime, max_tries: int, lock_seconds: int) -> int:
    """Count this attempt as a wrong one *before* the secret is checked, and commit that.

    One UPDATE that takes an attempt only while the person is not locked and has attempts left,
    so guesses sent in parallel — from any number of server processes — cannot all pass a
    check made before any of them was counted: at most ``max_tries`` secrets are checked per
    lock window. Returns this attempt's number; raises PinLocked, unchecked, when none is left.
    """
    session = object_session(staff)
    taken = session.execute(
        update(Staff).where(Staff.id == staff.id, Staff.failed_pins < max_tries,
                            or_(Staff.locked_until.is_(None), Staff.locked_until <= now))
        .values(failed_pins=Staff.failed_pins + 1, locked_until=None)
        .returning(Staff.failed_pins)).scalar_one_or_none()
    if taken is None:
        locked_until = session.scalar(select(Staff.locked_until).where(Staff.id == staff.id))
        session.commit()
        left = (locked_until - now).total_seconds() if locked_until is not None else lock_seconds
        raise PinLocked(int(max(left, 0)) + 1)
    session.commit()  # counted before the slow hash, where every other guess can see it
    return taken


def settle_attempt(staff: Staff, ok: bool, attempt: int, now: dt.datetime, max_tries: int,
                   lock_seconds: int) -> bool:
    """The right secret clears the count; the ``max_tries``-th wrong one locks the person."""
    session = object_session(staff)
    if ok:
        session.execute(update(Staff).where(Staff.id == staff.id)
                        .values(failed_pins=0, locked_until=None))
        return True
    if attempt >= max_tries:
        session.execute(update(Staff).where(Staff.id == staff.id)
                        .values(failed_pins=0, locked_until=now + dt.timedelta(seconds=lock_seconds)))
        raise PinLocked(lock_seconds, checked=True)
    return False


def check_pin(staff: Staff, pin: str, now: dt.datetime, max_tries: int, lock_seconds: int) -> bool:
    """True for the right PIN; counts wrong ones and locks the person after ``max_tries``.
    Commits the attempt's reservation itself (see reserve_attempt); the caller commits the rest."""
    attempt = reserve_attempt(staff, now, max_tries, lock_seconds)
    return settle_attempt(staff, staff.check_pin(pin or ""), attempt, now, max_tries, lock_seconds)


#: A hash of nobody's password, with Werkzeug's default scrypt cost, made once (not a secret).
_STAND_IN_HASH = ("scrypt:32768:8:1$ubI7op4vlF45khpK$51962cc65f5e651349e7772a1861be4634289415f1ec31423a94addca338bd59db213bd90a46f557cf213a7341f34b8bd84c8937581ba027c2481ecc855191cf")


def spend_a_password_check(password: str) -> None:
    """As long as checking a real account's password: an unknown email or a locked account
    must not answer faster than a real one (which would tell an attacker it exists)."""
    check_password_hash(_STAND_IN_HASH, password or "")


def check_password(staff: Staff, password: str, now: dt.datetime, max_tries: int,
                   lock_seconds: int) -> bool:
    """As ``check_pin``, for the laptop password; both share one lock."""
    attempt = reserve_attempt(staff, now, max_tries, lock_seconds)
    return settle_attempt(staff, staff.check_password(password or ""), attempt, now, max_tries,
                          lock_seconds)
