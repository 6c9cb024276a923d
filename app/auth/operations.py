"""PIN checks with a per-person lock after repeated wrong guesses."""
from __future__ import annotations

import datetime as dt

from flask_babel import gettext as _
from sqlalchemy import select, update
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


def ensure_not_locked(staff: Staff, now: dt.datetime) -> None:
    session = object_session(staff)
    # Read afresh: a guess running in parallel may have just locked this person.
    locked_until = session.execute(select(Staff.locked_until).where(Staff.id == staff.id)) \
        .scalar_one() if session is not None else staff.locked_until
    if locked_until is not None and now < locked_until:
        raise PinLocked(int((locked_until - now).total_seconds()) + 1)


def register_failure(staff: Staff, now: dt.datetime, max_tries: int, lock_seconds: int) -> None:
    """Count a wrong PIN or password; the ``max_tries``-th locks the person.

    The count is incremented in the database in one statement, so guesses sent in
    parallel are each counted (a read-then-write would let them all see the same count).
    """
    session = object_session(staff)
    count = session.execute(update(Staff).where(Staff.id == staff.id)
                            .values(failed_pins=Staff.failed_pins + 1)
                            .returning(Staff.failed_pins)).scalar_one()
    if count >= max_tries:
        session.execute(update(Staff).where(Staff.id == staff.id)
                        .values(failed_pins=0, locked_until=now + dt.timedelta(seconds=lock_seconds)))
        raise PinLocked(lock_seconds, checked=True)


def check_secret(staff: Staff, ok: bool, now: dt.datetime, max_tries: int,
                 lock_seconds: int) -> bool:
    """Apply the lock rules to one attempt whose correctness is ``ok``."""
    if ok:
        object_session(staff).execute(update(Staff).where(Staff.id == staff.id)
                                      .values(failed_pins=0, locked_until=None))
        return True
    register_failure(staff, now, max_tries, lock_seconds)
    return False


def check_pin(staff: Staff, pin: str, now: dt.datetime, max_tries: int, lock_seconds: int) -> bool:
    """True for the right PIN; counts wrong ones and locks the person after ``max_tries``."""
    ensure_not_locked(staff, now)
    return check_secret(staff, staff.check_pin(pin or ""), now, max_tries, lock_seconds)


#: A hash of nobody's password, with Werkzeug's default scrypt cost, made once (not a secret).
_STAND_IN_HASH = ("scrypt:32768:8:1$ubI7op4vlF45khpK$51962cc65f5e651349e7772a1861be4634289415f1ec31423a94addca338bd59db213bd90a46f557cf213a7341f34b8bd84c8937581ba027c2481ecc855191cf")


def spend_a_password_check(password: str) -> None:
    """As long as checking a real account's password: an unknown email or a locked account
    must not answer faster than a real one (which would tell an attacker it exists)."""
    check_password_hash(_STAND_IN_HASH, password or "")


def check_password(staff: Staff, password: str, now: dt.datetime, max_tries: int,
                   lock_seconds: int) -> bool:
    """As ``check_pin``, for the laptop password; both share one lock."""
    ensure_not_locked(staff, now)
    return check_secret(staff, staff.check_password(password or ""), now, max_tries, lock_seconds)
