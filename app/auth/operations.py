"""PIN checks with a per-person lock after repeated wrong guesses."""
from __future__ import annotations

import datetime as dt
import re

from flask_babel import gettext as _

from app.checklists.operations import OperationError
from app.models import Staff

PIN_PATTERN = re.compile(r"^\d{4,8}$")


class PinLocked(OperationError):
    """Too many wrong PINs for this person; ``seconds`` until they may try again."""

    def __init__(self, seconds: int):
        self.seconds = seconds
        super().__init__(_("Too many wrong PINs. Try again in %(seconds)s seconds.",
                           seconds=seconds))


def validate_pin(pin: str) -> str:
    if not PIN_PATTERN.match(pin or ""):
        raise OperationError(_("A PIN is 4 to 8 digits."))
    return pin


def ensure_not_locked(staff: Staff, now: dt.datetime) -> None:
    if staff.locked_until is not None and now < staff.locked_until:
        raise PinLocked(int((staff.locked_until - now).total_seconds()) + 1)


def register_failure(staff: Staff, now: dt.datetime, max_tries: int, lock_seconds: int) -> None:
    """Count a wrong PIN or password; the ``max_tries``-th locks the person."""
    staff.failed_pins += 1
    if staff.failed_pins >= max_tries:
        staff.failed_pins = 0
        staff.locked_until = now + dt.timedelta(seconds=lock_seconds)
        raise PinLocked(lock_seconds)


def check_secret(staff: Staff, ok: bool, now: dt.datetime, max_tries: int,
                 lock_seconds: int) -> bool:
    """Apply the lock rules to one attempt whose correctness is ``ok``."""
    if ok:
        staff.failed_pins, staff.locked_until = 0, None
        return True
    register_failure(staff, now, max_tries, lock_seconds)
    return False


def check_pin(staff: Staff, pin: str, now: dt.datetime, max_tries: int, lock_seconds: int) -> bool:
    """True for the right PIN; counts wrong ones and locks the person after ``max_tries``."""
    ensure_not_locked(staff, now)
    return check_secret(staff, staff.check_pin(pin or ""), now, max_tries, lock_seconds)


def check_password(staff: Staff, password: str, now: dt.datetime, max_tries: int,
                   lock_seconds: int) -> bool:
    """As ``check_pin``, for the laptop password; both share one lock."""
    ensure_not_locked(staff, now)
    return check_secret(staff, staff.check_password(password or ""), now, max_tries, lock_seconds)
