"""Cold-holding units (fridges, freezers, cold wells) and their limits."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import UTCDateTime, db, utcnow


#: Jurisdiction presets for a new unit's limits, °C.
PRESETS = {
    ("uk", "fridge"): {"target_max_c": 5.0, "critical_max_c": 8.0},
    ("uk", "freezer"): {"target_max_c": -18.0, "critical_max_c": -15.0},
    ("us", "fridge"): {"target_max_c": 5.0, "critical_max_c": 7.0},   # 41 °F / 45 °F
    ("us", "freezer"): {"target_max_c": -18.0, "critical_max_c": -15.0},  # 0 °F
}


class Unit(db.Model):
    """A fridge, freezer, walk-in, cold well or display case."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: fridge | freezer | walk_in | cold_well | display_case
    kind: Mapped[str] = mapped_column(String(20))
    #: Out of target alarms after the delay; past critical alarms (almost) at once.
    target_max_c: Mapped[float]
    critical_max_c: Mapped[float]
    min_c: Mapped[float | None]
    alert_delay_s: Mapped[int] = mapped_column(default=1800)
    hysteresis_c: Mapped[float] = mapped_column(default=0.5)
    #: The critical tier alarms after this short delay (0: at once).
    critical_delay_s: Mapped[int] = mapped_column(default=300)
    #: How often its sensors should report; silence for ``offline_after`` × this is "offline".
    expected_interval_s: Mapped[int] = mapped_column(default=60)
    offline_after: Mapped[int] = mapped_column(default=5)
    #: Daily defrost cycles in site-local time: [{"start": "02:00", "minutes": 30}, ...]
    defrost: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
