"""HTTP ingest's tokens and the responses its idempotency keys replay."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Immutable, UTCDateTime, db, utcnow


class IngestToken(db.Model):
    """A token for the HTTP ingest endpoint (sensors that cannot speak MQTT); stored hashed."""

    __tablename__ = "ingest_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The site it was issued for: it posts only for that site's sensors and unassigned ones.
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class IdempotencyKey(Immutable, db.Model):
    """The response an ``Idempotency-Key`` got from HTTP ingest, replayed to a retry for 24 h.

    Inserted in the transaction that stored the request's readings, so a key is remembered
    exactly when its readings are; purged by the retention job once stale.
    """

    __tablename__ = "ingest_idempotency_keys"
    __table_args__ = (UniqueConstraint("token_id", "key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    #: Keys are per token: two devices may pick the same key.
    token_id: Mapped[int] = mapped_column(ForeignKey("ingest_tokens.id"))
    #: The client's key, 1–200 printable ASCII characters.
    key: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the request body: the same key with another body is refused, not replayed.
    body_sha256: Mapped[str] = mapped_column(String(64))
    #: The response sent the first time, replayed as it was.
    status: Mapped[int]
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
