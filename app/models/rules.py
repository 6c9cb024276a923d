"""The kitchen's rules as each site keeps them: published versions, the yearly review's draft,
staff acknowledgements and suggestions (seed appendix; issue #14)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Immutable, UTCDateTime, db, utcnow


class RuleSetVersion(Immutable, db.Model):
    """One published version of a site's rules, kept whole: what every rule said, where it came
    from (a default rule, or a store rule that prevails over one), the appendix; never edited."""

    __tablename__ = "rule_set_versions"
    __table_args__ = (UniqueConstraint("site_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: 1 (the defaults the site started from), 2, 3… per site.
    number: Mapped[int]
    published_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The head chef who signed the review off (None for the defaults a site starts from).
    published_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    summary: Mapped[str | None] = mapped_column(Text)
    #: Every rule in force: [{code, number, title: {en, zh}, text: {en, zh}, source:
    #: "default" | "store", overrides: code | None}], in order.
    rules: Mapped[list] = mapped_column(JSON)
    #: Codes added, amended or retired since the version before (what staff must read again).
    changed: Mapped[list] = mapped_column(JSON)
    #: Codes retired by this version.
    retired: Mapped[list] = mapped_column(JSON)

    def audit_payload(self) -> dict:
        return {"site_id": self.site_id, "number": self.number, "published_at": self.published_at,
                "published_by_id": self.published_by_id, "summary": self.summary,
                "rules": self.rules, "changed": self.changed, "retired": self.retired}


class RuleReview(db.Model):
    """The yearly review while it is under way: a draft the head chef saves and continues; its
    sign-off publishes a RuleSetVersion (the record). Not a record itself."""

    __tablename__ = "rule_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    #: The version under review.
    base_version_id: Mapped[int] = mapped_column(ForeignKey("rule_set_versions.id"))
    started_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: {code: {"decision": keep|amend|retire, "title": {en, zh}, "text": {en, zh}}}
    decisions: Mapped[dict] = mapped_column(JSON, default=dict)
    #: [{"title": {en, zh}, "text": {en, zh}}]: store rules to add.
    additions: Mapped[list] = mapped_column(JSON, default=list)
    summary: Mapped[str | None] = mapped_column(Text)
    #: The version its sign-off published (None while under way).
    published_version_id: Mapped[int | None] = mapped_column(ForeignKey("rule_set_versions.id"))


class RuleAcknowledgement(Immutable, db.Model):
    """A person has read a rule of a version (training), on the tablet, in their language."""

    __tablename__ = "rule_acknowledgements"
    __table_args__ = (UniqueConstraint("staff_id", "version_id", "rule_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("rule_set_versions.id"), index=True)
    rule_code: Mapped[str] = mapped_column(String(20))
    #: The language it was read in.
    locale: Mapped[str] = mapped_column(String(10))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(String(32))

    def audit_payload(self) -> dict:
        return {"staff_id": self.staff_id, "version_id": self.version_id,
                "rule_code": self.rule_code, "locale": self.locale, "at": self.at,
                "device_id": self.device_id}


class RuleSuggestion(Immutable, db.Model):
    """A cook's suggestion to change a rule (or a new one), for the head chef and the review."""

    __tablename__ = "rule_suggestions"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    #: The rule it is about, or None for a new rule.
    rule_code: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    device_id: Mapped[str | None] = mapped_column(String(32))
    #: A photo taken on the tablet with it (optional).
    photo_id: Mapped[int | None] = mapped_column(ForeignKey("photos.id"))

    def audit_payload(self) -> dict:
        payload = {"site_id": self.site_id, "staff_id": self.staff_id,
                   "rule_code": self.rule_code, "text": self.text, "at": self.at,
                   "device_id": self.device_id}
        if self.photo_id is not None:  # (absent without a photo: older links verify unchanged)
            payload["photo_id"] = self.photo_id
        return payload


class SuggestionAnswer(Immutable, db.Model):
    """The head chef's answer to a suggestion."""

    __tablename__ = "rule_suggestion_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    suggestion_id: Mapped[int] = mapped_column(ForeignKey("rule_suggestions.id"), unique=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    def audit_payload(self) -> dict:
        return {"suggestion_id": self.suggestion_id, "staff_id": self.staff_id,
                "text": self.text, "at": self.at}
