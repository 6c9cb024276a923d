"""Checklist operations: open a run, record answers, submit, verify.

Each takes the acting person and device explicitly, writes records and their
audit links, and leaves the commit to its caller.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask_babel import format_decimal
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.alerts.operations import overdue_subject, resolve_submitted_late
from app.checklists.definitions import latest_definition
from app.checklists.schedules import Slot, local_date, local_to_utc, slots_for_day
from app.errors import OperationError
from app.models import (Answer, ChecklistDefinition, ChecklistItem, Photo, Role, Run, Site,
                        Staff, Submission, Verification, utcnow)
from sensors import temperature

logger = logging.getLogger(__name__)

#: The head chef supervises the rules (seed appendix 1): only a head chef corrects a submitted
#: checklist or signs it off — not an admin or owner, who look after people and settings.
CHEFS = (Role.HEAD_CHEF,)
#: Plausible range for a hand-entered probe reading; outside it is a typo, not a fail.
PROBE_RANGE_C = (-60.0, 120.0)
PHOTO_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png",
               b"GIF87a": "image/gif", b"GIF89a": "image/gif"}


class SubmissionRefused(OperationError):
    """A run cannot be submitted yet; ``problems`` lists (item, what is missing)."""

    def __init__(self, problems: list[tuple[ChecklistItem, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{item.text_en}: {why}" for item, why in problems))


# --- what is due ---------------------------------------------------------------------------

@dataclass
class DueEntry:
    definition: ChecklistDefinition
    slot: Slot
    run: Run | None
    status: str


def due_today(session, site: Site, now: dt.datetime, definitions) -> list[DueEntry]:
    """Today's slots (site-local) of the given checklists, with their runs and status.

    Yesterday's slots whose deadline falls after midnight (a late closing check) are
    still today's business: they stay listed, and overdue, until submitted.
    """
    day = local_date(now, site.timezone)
    midnight = local_to_utc(day, dt.time(0, 0), ZoneInfo(site.timezone))
    slots = [(d, s) for d in definitions
             for s in slots_for_day(d.schedules, day - dt.timedelta(days=1), site.timezone)
             if s.deadline > midnight]
    slots += [(d, s) for d in definitions for s in slots_for_day(d.schedules, day, site.timezone)]
    if not slots:
        return []
    starts = [s.start for _, s in slots]
    runs = session.execute(select(Run).where(Run.site_id == site.id,
                                             Run.slot_start >= min(starts),
                                             Run.slot_start <= max(starts))).scalars()
    by_slot = {(r.checklist_key, r.schedule_key, r.slot_start): r for r in runs}
    entries = []
    for definition, slot in slots:
        run = by_slot.get((definition.key, slot.schedule_key, slot.start))
        status = slot.status(now, submitted=bool(run and run.submission),
                             verified=bool(run and run.verification), started=run is not None)
        entries.append(DueEntry(definition, slot, run, status))
    return entries


def open_run(session, site: Site, checklist_key: str, slot: Slot, staff: Staff,
             device_id: str | None, now: dt.datetime | None = None) -> Run:
    """The run for this slot, opening it (with the current definition) if nobody has yet."""
    now = now or utcnow()
    if now < slot.start:
        raise OperationError(_("This checklist is not open yet."))
    existing = _run_for_slot(session, site, checklist_key, slot)
    if existing is not None:
        return existing
    definition = latest_definition(session, checklist_key, site.id)
    if definition is None:
        raise OperationError(_("Unknown checklist."))
    run = Run(site_id=site.id, definition_id=definition.id, checklist_key=checklist_key,
              schedule_key=slot.schedule_key, slot_start=slot.start, deadline=slot.deadline,
              opened_by_id=staff.id, opened_at=now, device_id=device_id)
    try:
        with session.begin_nested():
            audit.append(session, run, "run.opened", staff.id, device_id)
    except IntegrityError:
        # Another tablet opened the same slot a moment ago: use theirs.
        existing = _run_for_slot(session, site, checklist_key, slot)
        if existing is None:
            raise
        return existing
    return run


def _run_for_slot(session, site, checklist_key, slot) -> Run | None:
    return session.execute(select(Run).where(
        Run.site_id == site.id, Run.checklist_key == checklist_key,
        Run.schedule_key == slot.schedule_key, Run.slot_start == slot.start)).scalar_one_or_none()


def find_slot(definition: ChecklistDefinition, site: Site, schedule_key: str,
              start: dt.datetime) -> Slot | None:
    """The slot of ``definition`` starting at ``start`` (UTC), if the schedule has one."""
    day = local_date(start, site.timezone)
    # Only the named schedule's slots: a checklist's other schedules need not be worked out.
    schedules = [s for s in definition.schedules if s["key"] == schedule_key]
    for slot in slots_for_day(schedules, day, site.timezone):
        if slot.start == start:
            return slot
    return None


# --- answers -------------------------------------------------------------------------------

def current_answers(run: Run) -> dict[int, Answer]:
    """The answer in force for each item: the last one recorded (each supersedes the one before)."""
    current: dict[int, Answer] = {}
    for answer in run.answers:
        current[answer.item_id] = answer
    return current


# --- a temperature from the unit's sensor ---------------------------------------------------

@dataclass(frozen=True)
class SensorNow:
    """A unit's live reading, as the tablet offers it for a temperature item."""
    unit_name: str
    celsius: float
    measured_at: dt.datetime
    #: From then on the reading is stale and no longer offered (the unit's offline threshold).
    stale_at: dt.datetime

    def age(self, now: dt.datetime) -> dt.timedelta:
        return max(dt.timedelta(0), now - self.measured_at)


def sensor_now(session, site: Site, items, now: dt.datetime) -> dict[int, SensorNow]:
    """The live reading of the unit each temperature item names, by item id.

    Only a reading that can stand for the unit now: from a sensor attached to it, not reported
    offline, measured within the unit's offline threshold (its expected interval × the
    intervals of silence it allows); of several sensors, the warmest such reading.
    """
    from app.models.units import Unit
    from sensors.models import Sensor
    names = {i.id: i.unit_name for i in items if i.kind == "temperature" and i.unit_name}
    if not names:
        return {}
    units = session.execute(select(Unit).where(
        Unit.site_id == site.id,
        func.lower(Unit.name).in_({n.lower() for n in names.values()}))).scalars().all()
    found: dict[str, SensorNow] = {}
    for unit in units:
        fresh_for = dt.timedelta(seconds=unit.expected_interval_s * unit.offline_after)
        fresh_after = now - fresh_for
        sensors = session.execute(select(Sensor).where(
            Sensor.unit_id == unit.id, Sensor.last_temperature_c.is_not(None),
            Sensor.last_reading_at >= fresh_after, Sensor.last_reading_at <= now
            + dt.timedelta(minutes=1))).scalars().all()
        live = [s for s in sensors if s.online is not False]
        if live:
            warmest = max(live, key=lambda s: s.last_temperature_c)
            found[unit.name.lower()] = SensorNow(unit.name, round(warmest.last_temperature_c, 1),
                                                 warmest.last_reading_at,
                                                 warmest.last_reading_at + fresh_for)
    return {item_id: found[name.lower()] for item_id, name in names.items()
            if name.lower() in found}


def parse_temperature(raw: str, unit: str) -> float:
    """A probe reading as typed ("4,5", "39.2 °F"), in °C; OperationError if it is not one."""
    celsius = temperature.parse_temperature(raw, unit)
    if celsius is None:
        raise OperationError(_("“%(value)s” is not a temperature.", value=raw))
    if not PROBE_RANGE_C[0] <= celsius <= PROBE_RANGE_C[1]:
        raise OperationError(_("%(value)s °%(unit)s is not a plausible reading; check the probe.",
                               value=raw, unit=unit))
    return round(celsius, 2)


def judge(item: ChecklistItem, raw: str, unit: str) -> tuple[str, str, float | None]:
    """Normalise an entered value for an item: (value, outcome, temperature in °C)."""
    raw = (raw or "").strip()
    if item.kind == "passfail":
        if raw not in ("pass", "fail", "na"):
            raise OperationError(_("Choose pass, fail or not applicable."))
        return raw, raw, None
    if item.kind == "temperature":
        if raw == "na":
            return "na", "na", None
        celsius = parse_temperature(raw, unit)
        too_warm = item.temp_max_c is not None and celsius > item.temp_max_c
        too_cold = item.temp_min_c is not None and celsius < item.temp_min_c
        return f"{celsius:g}", "fail" if (too_warm or too_cold) else "pass", celsius
    if item.kind == "time":
        if not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", raw):
            raise OperationError(_("“%(value)s” is not a time like 12:30.", value=raw))
        return raw.zfill(5), "recorded", None
    if not raw:
        raise OperationError(_("Write something, or leave the item empty."))
    if len(raw) > 2000:
        raise OperationError(_("That text is too long (2,000 characters at most)."))
    return raw, "recorded", None


def _clean(text: str | None, limit: int = 2000) -> str | None:
    text = (text or "").strip()
    if len(text) > limit:
        raise OperationError(_("That text is too long (2,000 characters at most)."))
    return text or None


#: Passed for a field the person did not touch: it keeps the value of the answer in force.
KEEP = object()


def record_answer(session, run: Run, item: ChecklistItem, staff: Staff, device_id: str | None,
                  *, value=KEEP, note=KEEP, corrective_action=KEEP,
                  photo: Photo | None = None, reason: str | None = None,
                  from_sensor: bool = False, now: dt.datetime | None = None) -> Answer:
    """Record an answer as given; an identical re-send records nothing new.

    A field left as ``KEEP`` (a note added to a ticked item, say) carries over from the
    answer in force, read after the chain's lock so a concurrent tap is not overwritten.
    ``from_sensor``: the temperature is the item's unit's live sensor reading, read here
    (refused when there is none fresh), and the answer says so.
    """
    if item.definition_id != run.definition_id:
        raise OperationError(_("That item is not on this checklist."))
    source = None
    if from_sensor:
        reading = sensor_now(session, session.get(Site, run.site_id), [item],
                             now or utcnow()).get(item.id)
        if reading is None:
            raise OperationError(_("The sensor has no recent reading: read the probe or the "
                                   "unit's display and type it."))
        value, source = f"{reading.celsius:g} C", "sensor"
    audit.serialize(session)
    submitted = _submission(session, run) is not None
    if submitted:
        if not staff.has_role(*CHEFS):
            raise OperationError(_("This checklist was submitted; ask the head chef to correct it."))
        if not (reason or "").strip():
            raise OperationError(_("A correction after submission needs a reason."))
    previous = latest_answer(session, run, item)
    given_value = value
    if source is None and value is KEEP and previous is not None:
        source = previous.source  # a note added to a sensor reading keeps where it came from
    value, note, corrective_action = (
        (getattr(previous, name, None) if given is KEEP else given) for name, given in
        (("value", value), ("note", note), ("corrective_action", corrective_action)))
    if value is None:
        raise OperationError(_("Answer the item first, then add a note or photo."))
    if given_value is KEEP and item.kind == "temperature" and previous.temperature_c is not None:
        value = f"{previous.temperature_c:g} C"  # stored in °C: not to be re-read in °F
    site = session.get(Site, run.site_id)
    value, outcome, celsius = judge(item, value, site.temp_unit)
    note, corrective_action, reason = _clean(note), _clean(corrective_action), _clean(reason)
    if outcome != "fail":
        corrective_action = None
    photo_id = photo.id if photo is not None else (previous.photo_id if previous else None)
    if previous is not None and reason is None and (
            previous.value, previous.note, previous.corrective_action, previous.photo_id,
            previous.source) == (value, note, corrective_action, photo_id, source):
        return previous
    answer = Answer(run=run, item_id=item.id, value=value, outcome=outcome, temperature_c=celsius,
                    note=note, corrective_action=corrective_action, photo_id=photo_id,
                    supersedes_id=previous.id if previous else None, reason=reason,
                    recorded_by_id=staff.id, recorded_at=now or utcnow(), device_id=device_id,
                    source=source)
    action = "answer.corrected" if submitted else "answer.recorded"
    audit.append(session, answer, action, staff.id, device_id)
    return answer


def latest_answer(session, run: Run, item: ChecklistItem) -> Answer | None:
    """The answer in force for one item (one row, where ``current_answers`` loads the run's all)."""
    return session.execute(select(Answer).where(Answer.run_id == run.id, Answer.item_id == item.id)
                           .order_by(Answer.id.desc()).limit(1)).scalar_one_or_none()


def _submission(session, run: Run) -> Submission | None:
    return session.execute(select(Submission).where(Submission.run_id == run.id)).scalar_one_or_none()


def photo_too_large(max_bytes: int) -> str:
    """What a person is told when a photo over the limit was refused before it was read."""
    return _("That photo is too large (the limit is %(mb)s MB): nothing was saved. Take it "
             "again at a lower resolution.", mb=format_decimal(max_bytes / 2**20, "#.#"))


def store_photo(session, data: bytes, staff: Staff, device_id: str | None, max_bytes: int) -> Photo:
    """Keep a photo taken on the tablet (JPEG, PNG or GIF, checked by its bytes)."""
    if not data:
        raise OperationError(_("The photo is empty."))
    if len(data) > max_bytes:
        raise OperationError(_("The photo is too large (%(mb)s MB at most).",
                               mb=max_bytes // (1024 * 1024)))
    content_type = next((t for magic, t in PHOTO_TYPES.items() if data.startswith(magic)), None)
    if content_type is None:
        raise OperationError(_("That file is not a photo (JPEG, PNG or GIF)."))
    photo = Photo(sha256=hashlib.sha256(data).hexdigest(), content_type=content_type, data=data,
                  uploaded_by_id=staff.id, device_id=device_id)
    audit.append(session, photo, "photo.stored", staff.id, device_id)
    return photo


# --- submission and sign-off ---------------------------------------------------------------

def submission_problems(run: Run) -> list[tuple[ChecklistItem, str]]:
    current = current_answers(run)
    problems = []
    for item in run.definition.items:
        answer = current.get(item.id)
        if answer is None:
            if item.required:
                problems.append((item, "unanswered"))
        elif answer.outcome == "fail" and not answer.corrective_action:
            problems.append((item, "needs a corrective action"))
    return problems


def submit_run(session, run: Run, staff: Staff, device_id: str | None,
               now: dt.datetime | None = None) -> Submission:
    """Submit a run; refused, naming the items, while any is unanswered or lacks a fix."""
    audit.serialize(session)
    session.refresh(run)
    if run.submission is not None:
        raise OperationError(_("This checklist was already submitted."))
    problems = submission_problems(run)
    if problems:
        raise SubmissionRefused(problems)
    submission = Submission(run=run, submitted_by_id=staff.id, submitted_at=now or utcnow(),
                            device_id=device_id)
    audit.append(session, submission, "run.submitted", staff.id, device_id)
    if submission.submitted_at >= run.deadline:
        # Done, if late: the overdue alert closes itself; nobody need acknowledge it.
        resolve_submitted_late(session, overdue_subject(run.site_id, run.checklist_key,
                                                        run.schedule_key, run.slot_start),
                               staff, device_id, run_id=run.id,
                               submitted_at=submission.submitted_at)
    return submission


def verify_run(session, run: Run, staff: Staff, device_id: str | None, note: str | None = None,
               now: dt.datetime | None = None) -> Verification:
    """The head chef's sign-off of a submitted run."""
    if not staff.has_role(*CHEFS):
        raise OperationError(_("Only the head chef can verify a checklist."))
    audit.serialize(session)
    session.refresh(run)
    if run.submission is None:
        raise OperationError(_("This checklist has not been submitted yet."))
    if run.verification is not None:
        raise OperationError(_("This checklist was already verified."))
    verification = Verification(run=run, verified_by_id=staff.id, verified_at=now or utcnow(),
                                note=_clean(note), device_id=device_id)
    audit.append(session, verification, "run.verified", staff.id, device_id)
    return verification
