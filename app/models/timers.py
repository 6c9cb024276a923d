"""Hold timers (rules 2, 3 and 7) and their outcomes."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Immutable, UTCDateTime, db, utcnow


class HoldTimer(Immutable, db.Model):
    """A dish out of refrigeration, or plated, on the clock."""

    __tablename__ = "hold_timers"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: Which timer preset: cold_out (rule 2), plated (rule 3), time_control (4 h, rule 7).
    kind: Mapped[str] = mapped_column(String(30))
    rule_code: Mapped[str] = mapped_column(String(20))
    dish: Mapped[str] = mapped_column(String(200))
    started_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    #: Indexed: the tablet's panel and the expiry sweep read the last days' timers only.
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))

    started_by: Mapped["Staff"] = relationship()  # noqa: F821
    outcomes: Mapped[list[TimerOutcome]] = relationship(back_populates="timer",
                                                        order_by="TimerOutcome.id")

    def audit_payload(self) -> dict:
        return {"site_id": self.site_id, "kind": self.kind, "rule_code": self.rule_code,
                "dish": self.dish, "started_by_id": self.started_by_id,
                "started_at": self.started_at, "expires_at": self.expires_at,
                "device_id": self.device_id}


class TimerOutcome(Immutable, db.Model):
    """Served or discarded, by whom and when; a correction supersedes, with a reason."""

    __tablename__ = "timer_outcomes"

    id: Mapped[int] = mapped_column(primary_key=True)
    timer_id: Mapped[int] = mapped_column(ForeignKey("hold_timers.id"), index=True)
    #: served | discarded
    outcome: Mapped[str] = mapped_column(String(20))
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("timer_outcomes.id"), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))

    timer: Mapped[HoldTimer] = relationship(back_populates="outcomes")
    recorded_by: Mapped["Staff"] = relationship()  # noqa: F821

    def audit_payload(self) -> dict:
        return {"timer_id": self.timer_id, "outcome": self.outcome,
                "supersedes_id": self.supersedes_id, "reason": self.reason,
                "recorded_by_id": self.recorded_by_id, "recorded_at": self.recorded_at,
                "device_id": self.device_id}
