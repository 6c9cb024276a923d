"""Wall displays' tokens and the per-site change counter every live screen asks about."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import UTCDateTime, db, utcnow


class LiveVersion(db.Model):
    """A site's change counter: moved on by every commit that changes what a screen shows.

    Screens ask "anything since version N?"; any process (web, ingest, scheduler) that commits
    a change moves it on in the same transaction, so a screen served by another process sees it.
    """

    __tablename__ = "live_versions"

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)


class DisplayToken(db.Model):
    """A wall display's read-only access to its site's board: stored hashed, revocable."""

    __tablename__ = "display_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The one site whose board it shows; it reaches nothing else.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    #: SHA-256 of the token; the token itself is shown once, as a URL and a QR code.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: "en" or "zh": the board's language.
    locale: Mapped[str] = mapped_column(String(10), default="en")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    #: When the screen last asked for news (written at most once a minute).
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Set once: the screen loses the board at its next question, within a second.
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
