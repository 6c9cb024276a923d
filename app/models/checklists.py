"""Checklist definitions (versioned data), runs and the records made on them."""
from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Immutable, UTCDateTime, db, utcnow


class Rule(db.Model):
    """One serving-hygiene rule, as worded in one version of the rule set."""

    __tablename__ = "rules"
    __table_args__ = (UniqueConstraint("code", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Stable code such as "R1"; checklist items link to it.
    code: Mapped[str] = mapped_column(String(20))
    version: Mapped[int]
    number: Mapped[int]
    #: "default" (the seed rules) or "store" (the site's own rule, which prevails).
    source: Mapped[str] = mapped_column(String(20), default="default")
    title_en: Mapped[str] = mapped_column(String(200))
    title_zh: Mapped[str] = mapped_column(String(200))
    text_en: Mapped[str] = mapped_column(Text)
    text_zh: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChecklistDefinition(db.Model):
    """One version of a checklist; a changed YAML file makes a new version. Versions are
    numbered per checklist across every site: a site whose rules retire a rule or add items of
    a store rule works from a version of its own, derived from the default one."""

    __tablename__ = "checklist_definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80))
    version: Mapped[int]
    #: None for the default (the YAML file); a site for a version of that site's own.
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    #: A site's version: the default version it was derived from, and the site's rules version
    #: it follows.
    base_id: Mapped[int | None] = mapped_column(ForeignKey("checklist_definitions.id"))
    rules_version_id: Mapped[int | None] = mapped_column(ForeignKey("rule_set_versions.id"))
    title_en: Mapped[str] = mapped_column(String(200))
    title_zh: Mapped[str] = mapped_column(String(200))
    #: Schedules in site-local wall-clock time, as written in the YAML.
    schedules: Mapped[list] = mapped_column(JSON)
    #: sha256 of the canonical definition: unchanged files load as no-ops.
    content_hash: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    items: Mapped[list[ChecklistItem]] = relationship(
        back_populates="definition", order_by="ChecklistItem.position")

    def title(self, locale: str) -> str:
        return self.title_zh if locale.startswith("zh") else self.title_en


class ChecklistItem(db.Model):
    __tablename__ = "checklist_items"
    __table_args__ = (UniqueConstraint("definition_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("checklist_definitions.id"), index=True)
    key: Mapped[str] = mapped_column(String(80))
    position: Mapped[int]
    #: passfail | temperature | time | text
    kind: Mapped[str] = mapped_column(String(20))
    text_en: Mapped[str] = mapped_column(Text)
    text_zh: Mapped[str] = mapped_column(Text)
    #: The rule this item enforces (Rule.code).
    rule_code: Mapped[str] = mapped_column(String(20))
    critical: Mapped[bool] = mapped_column(default=False)
    #: A required item must be answered before the run can be submitted.
    required: Mapped[bool] = mapped_column(default=True)
    #: Limits for temperature items, in °C; outside them the answer is a fail.
    temp_min_c: Mapped[float | None]
    temp_max_c: Mapped[float | None]
    #: Suggested corrective actions: [{"en": ..., "zh": ...}, ...]
    suggested_actions: Mapped[list] = mapped_column(JSON, default=list)
    #: The unit a temperature item is about, by the name a site gives it ("Cold-dish fridge"):
    #: the tablet offers that unit's live sensor reading. None: a reading by probe only.
    unit_name: Mapped[str | None] = mapped_column(String(120))

    definition: Mapped[ChecklistDefinition] = relationship(back_populates="items")

    def text(self, locale: str) -> str:
        return self.text_zh if locale.startswith("zh") else self.text_en


class Run(Immutable, db.Model):
    """One occurrence of a scheduled checklist, opened by someone on a device."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("site_id", "checklist_key", "schedule_key", "slot_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: The definition version in force when the run was opened; it keeps it.
    definition_id: Mapped[int] = mapped_column(ForeignKey("checklist_definitions.id"))
    checklist_key: Mapped[str] = mapped_column(String(80))
    schedule_key: Mapped[str] = mapped_column(String(80))
    #: When the slot opens and when it must be submitted by (UTC).
    slot_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    deadline: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    opened_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))

    definition: Mapped[ChecklistDefinition] = relationship()
    opened_by: Mapped["Staff"] = relationship()  # noqa: F821
    answers: Mapped[list[Answer]] = relationship(back_populates="run", order_by="Answer.id")
    submission: Mapped[Submission | None] = relationship(back_populates="run")
    verification: Mapped[Verification | None] = relationship(back_populates="run")

    def audit_payload(self) -> dict:
        return {"site_id": self.site_id, "definition_id": self.definition_id,
                "checklist_key": self.checklist_key, "schedule_key": self.schedule_key,
                "slot_start": self.slot_start, "deadline": self.deadline,
                "opened_by_id": self.opened_by_id, "opened_at": self.opened_at,
                "device_id": self.device_id}


class Photo(Immutable, db.Model):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    content_type: Mapped[str] = mapped_column(String(40))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    uploaded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))

    def audit_payload(self) -> dict:
        # The digest of the bytes as they are now, so a swapped image is caught.
        return {"sha256": hashlib.sha256(self.data).hexdigest(), "size": len(self.data),
                "content_type": self.content_type, "uploaded_by_id": self.uploaded_by_id,
                "uploaded_at": self.uploaded_at, "device_id": self.device_id}


class Answer(Immutable, db.Model):
    """One answer to one item, as given. A newer answer supersedes it; none is edited."""

    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("checklist_items.id"))
    #: What was entered: pass/fail/na, a temperature in °C, HH:MM, or text.
    value: Mapped[str] = mapped_column(Text)
    #: pass | fail | na | recorded — decided when recorded (temperature vs limits).
    outcome: Mapped[str] = mapped_column(String(10))
    temperature_c: Mapped[float | None]
    note: Mapped[str | None] = mapped_column(Text)
    corrective_action: Mapped[str | None] = mapped_column(Text)
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id"))
    #: The answer this one replaces, and why (a reason is required after submission).
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id"), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    #: Where a temperature came from: "sensor" (the unit's live sensor, one tap), or None (as
    #: typed from the probe or the unit's display).
    source: Mapped[str | None] = mapped_column(String(20))

    run: Mapped[Run] = relationship(back_populates="answers")
    item: Mapped[ChecklistItem] = relationship()
    recorded_by: Mapped["Staff"] = relationship()  # noqa: F821
    photo: Mapped[Photo | None] = relationship()

    def audit_payload(self) -> dict:
        payload = {"run_id": self.run_id, "item_id": self.item_id, "value": self.value,
                "outcome": self.outcome, "temperature_c": self.temperature_c, "note": self.note,
                "corrective_action": self.corrective_action, "photo_id": self.photo_id,
                "supersedes_id": self.supersedes_id, "reason": self.reason,
                "recorded_by_id": self.recorded_by_id, "recorded_at": self.recorded_at,
                "device_id": self.device_id}
        if self.source is not None:  # (absent for typed answers: older links verify unchanged)
            payload["source"] = self.source
        return payload


class Submission(Immutable, db.Model):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), unique=True)
    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    submitted_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))

    run: Mapped[Run] = relationship(back_populates="submission")
    submitted_by: Mapped["Staff"] = relationship()  # noqa: F821

    def audit_payload(self) -> dict:
        return {"run_id": self.run_id, "submitted_by_id": self.submitted_by_id,
                "submitted_at": self.submitted_at, "device_id": self.device_id}


class Verification(Immutable, db.Model):
    """The head chef's sign-off of a submitted run."""

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), unique=True)
    verified_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    verified_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(Text)
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))

    run: Mapped[Run] = relationship(back_populates="verification")
    verified_by: Mapped["Staff"] = relationship()  # noqa: F821

    def audit_payload(self) -> dict:
        return {"run_id": self.run_id, "verified_by_id": self.verified_by_id,
                "verified_at": self.verified_at, "note": self.note, "device_id": self.device_id}
