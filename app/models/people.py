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
    COOK = "cook"
    HEAD_CHEF = "head_chef"
    ADMIN = "admin"


class Site(db.Model):
    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    #: IANA zone; schedules and every time shown to people use it.
    timezone: Mapped[str] = mapped_column(String(64))
    #: "C" or "F": how temperatures are shown; storage is always °C.
    temp_unit: Mapped[str] = mapped_column(String(1), default="C")
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
    #: PIN guessing: consecutive wrong PINs and the time the lock lifts.
    failed_pins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    site: Mapped[Site] = relationship(back_populates="staff")

    def set_pin(self, pin: str) -> None:
        self.pin_hash = generate_password_hash(pin)

    def check_pin(self, pin: str) -> bool:
        return bool(self.pin_hash) and check_password_hash(self.pin_hash, pin)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.active

    def has_role(self, *roles: Role) -> bool:
        return self.role in roles


class Device(db.Model):
    """A browser (usually a kitchen tablet), known by a long-lived cookie."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str | None] = mapped_column(String(120))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    first_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
