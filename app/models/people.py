"""Sites, the people who work there and the devices they use."""
from __future__ import annotations

import datetime as dt
import enum

from flask_login import UserMixin
from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.models.base import UTCDateTime, db, utcnow


class Role(str, enum.Enum):
    """What a person may do. A cook, head chef or admin works at one site; an admin manages
    that site's people and settings, and every site of the group; an owner sees every site."""

    COOK = "cook"
    HEAD_CHEF = "head_chef"
    ADMIN = "admin"
    OWNER = "owner"


#: Roles that sign in with a password on a laptop (a cook has only a PIN).
PASSWORD_ROLES = (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER)
#: Roles whose current site is the one they chose, among every site of the group.
GROUP_ROLES = (Role.ADMIN, Role.OWNER)
PIN_LENGTHS = range(4, 9)


class Site(db.Model):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    #: IANA zone; schedules and every time shown to people use it.
    timezone: Mapped[str] = mapped_column(String(64))
    #: "C" or "F": how temperatures are shown; storage is always °C.
    temp_unit: Mapped[str] = mapped_column(String(1), default="C")
    #: The language a new person of this site starts with ("en" or "zh").
    language: Mapped[str] = mapped_column(String(10), default="en", server_default="en")
    #: Digits in a new or reset PIN (4–8); PINs set before a change keep their length.
    pin_length: Mapped[int] = mapped_column(default=6, server_default="6")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    staff: Mapped[list[Staff]] = relationship(back_populates="site", order_by="Staff.name")


class Staff(UserMixin, db.Model):
    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20,
                                            values_callable=lambda e: [m.value for m in e]))
    #: Salted hash of the tablet PIN; the PIN itself is never stored.
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    #: Laptop login for head chef and admin; None for cooks.
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(10), default="en")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: A session carries the version it began with and is honoured only while it matches:
    #: logging out of a PIN (tablet) or a password (laptop) session moves its kind's version
    #: on, ending every copy of that kind of session; a new PIN or password moves both.
    pin_session_version: Mapped[int] = mapped_column(default=0, server_default="0")
    password_session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    site: Mapped[Site] = relationship(back_populates="staff")

    def set_pin(self, pin: str) -> None:
        self.pin_hash = generate_password_hash(pin)
        self.end_sessions()

    def check_pin(self, pin: str) -> bool:
        return bool(self.pin_hash) and check_password_hash(self.pin_hash, pin)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)
        self.end_sessions()

    def end_sessions(self, via_pin: bool | None = None) -> None:
        """End this person's sessions: PIN ones, password ones, or (None) both."""
        if via_pin is not False:
            self.pin_session_version = (self.pin_session_version or 0) + 1
        if via_pin is not True:
            self.password_session_version = (self.password_session_version or 0) + 1

    def session_version(self, via_pin: bool) -> int:
        return (self.pin_session_version if via_pin else self.password_session_version) or 0

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles


class SignInGuard(db.Model):
    """Wrong PINs or passwords, counted apart for each person, kind of secret and device.

    ``device_id`` is a device the person has signed in on with that kind of secret before, or
    "" for every other device: guesses from a stranger's browser lock the person out of
    strangers' browsers only, never out of their own tablet or laptop, and five wrong passwords
    do not lock the PIN (nor the other way round).
    """

    __tablename__ = "sign_in_guards"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    #: pin | password
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    failed: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: When the person last signed in from this device this way (None for the "" row).
    trusted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SignInBudget(db.Model):
    """Wrong guesses allowed per window from browsers a person has not signed in on, counted
    across everyone: per site ("site:<id>:<kind>") and per device ("device:<id>:<kind>"), so
    trying a few PINs on each of many people is stopped as surely as many on one."""

    __tablename__ = "sign_in_budgets"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used: Mapped[int] = mapped_column(default=0)


class Device(db.Model):
    """A browser (usually a kitchen tablet), known by a long-lived cookie."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(120))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
