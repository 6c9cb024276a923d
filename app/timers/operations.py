"""Hold timers for rules 2, 3 and 7: start one, and record served or discarded."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from flask_babel import gettext as _

from app import audit
from app.errors import OperationError
from app.formatting import label
from app.models import HoldTimer, Site, Staff, TimerOutcome, utcnow

PRESETS_FILE = Path(__file__).resolve().parents[2] / "checklists" / "timers.yaml"
OUTCOMES = ("served", "discarded")


@dataclass(frozen=True)
class Preset:
    key: str
    rule: str
    minutes: int
    name: dict


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """Timer presets from ``checklists/timers.yaml``."""
    data = yaml.safe_load(PRESETS_FILE.read_text(encoding="utf-8"))
    out = {}
    for raw in data["timers"]:
        minutes = raw["minutes"]
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
            raise ValueError(f"{PRESETS_FILE.name}: timer {raw['key']!r} needs positive minutes")
        out[raw["key"]] = Preset(raw["key"], raw["rule"], minutes, raw["name"])
    return out


def start_timer(session, site: Site, staff: Staff, device_id: str | None, kind: str, dish: str,
                now: dt.datetime | None = None) -> HoldTimer:
    preset = presets().get(kind)
    if preset is None:
        raise OperationError(_("Unknown kind of timer."))
    dish = (dish or "").strip()
    if not dish:
        raise OperationError(_("Say which dish the timer is for."))
    if len(dish) > 200:
        raise OperationError(_("That dish name is too long."))
    now = now or utcnow()
    timer = HoldTimer(site_id=site.id, kind=kind, rule_code=preset.rule, dish=dish,
                      started_by_id=staff.id, started_at=now,
                      expires_at=now + dt.timedelta(minutes=preset.minutes), device_id=device_id)
    audit.append(session, timer, "timer.started", staff.id, device_id)
    return timer


def current_outcome(timer: HoldTimer) -> TimerOutcome | None:
    return timer.outcomes[-1] if timer.outcomes else None


def record_outcome(session, timer: HoldTimer, staff: Staff, device_id: str | None, outcome: str,
                   reason: str | None = None, now: dt.datetime | None = None) -> TimerOutcome:
    """Served or discarded; changing a recorded outcome is a correction with a reason."""
    if outcome not in OUTCOMES:
        raise OperationError(_("Choose served or discarded."))
    audit.serialize(session)
    session.refresh(timer)
    previous = current_outcome(timer)
    reason = (reason or "").strip() or None
    if previous is not None:
        if previous.outcome == outcome and reason is None:
            return previous  # a double tap
        if reason is None:
            raise OperationError(_("This dish was already recorded as %(outcome)s; a correction "
                                   "needs a reason.", outcome=label(previous.outcome)))
    record = TimerOutcome(timer=timer, outcome=outcome,
                          supersedes_id=previous.id if previous else None, reason=reason,
                          recorded_by_id=staff.id, recorded_at=now or utcnow(), device_id=device_id)
    audit.append(session, record, "timer.corrected" if previous else "timer.outcome",
                 staff.id, device_id)
    return record


def timer_state(timer: HoldTimer, now: dt.datetime) -> str:
    """running · expired (must be served or discarded now) · served · discarded."""
    outcome = current_outcome(timer)
    if outcome is not None:
        return outcome.outcome
    return "expired" if now >= timer.expires_at else "running"


#: A timer left without an outcome is the tablet's (and the sweep's) business this long; older
#: ones are history, in the records.
OPEN_TIMER_HORIZON = dt.timedelta(days=2)


def timers_context(session, site: Site, now: dt.datetime) -> dict:
    """Timers still needing an outcome, plus those settled in the last hour."""
    # The last two days' timers by the started_at index, with their outcomes in one more
    # query: not every timer ever (an OR with NOT EXISTS scanned them all) nor a query each.
    timers = session.execute(
        select(HoldTimer).where(HoldTimer.site_id == site.id,
                                HoldTimer.started_at >= now - OPEN_TIMER_HORIZON)
        .options(selectinload(HoldTimer.outcomes))
        .order_by(HoldTimer.expires_at)).scalars().all()
    states = {t.id: timer_state(t, now) for t in timers}
    open_timers = [t for t in timers if states[t.id] in ("running", "expired")]
    recent = now - dt.timedelta(hours=1)
    done = [t for t in timers if t not in open_timers and current_outcome(t).recorded_at >= recent]
    return dict(timers=open_timers, done_timers=done, timer_states=states,
                timer_presets=presets(), now=now)
