"""Display tokens: issued once in plain (as a URL and a QR code), kept hashed, revoked."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import select, update

from app.errors import OperationError
from app.models import DisplayToken, LiveVersion, Site, Staff

logger = logging.getLogger(__name__)

LOCALES = ("en", "zh")
#: "Last seen" is written at most this often per display: a screen asks twice a second.
SEEN_EVERY = dt.timedelta(minutes=1)
_PLAIN_LENGTH = 47  # "dsp_" + the 43 characters of token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_display(session, site: Site, name: str, locale: str, staff: Staff
                   ) -> tuple[DisplayToken, str]:
    """A new display token for the site; the plain token is returned once, only its hash kept."""
    name = (name or "").strip()
    if not name:
        raise OperationError(_("Give the display a name, e.g. where it hangs."))
    if len(name) > 120:
        raise OperationError(_("A name is at most 120 characters."))
    if locale not in LOCALES:
        locale = site.language if site.language in LOCALES else "en"
    plain = "dsp_" + secrets.token_urlsafe(32)
    display = DisplayToken(site_id=site.id, name=name, token_hash=hash_token(plain),
                           locale=locale, created_by_id=staff.id)
    session.add(display)
    session.flush()
    logger.info("display %s (%s) created for site %s by staff %s", display.id, name, site.id,
                staff.id)
    return display, plain


def revoke_display(session, display: DisplayToken, now: dt.datetime) -> DisplayToken:
    """Refuse this display from its next question on (kept, for the record)."""
    if display.revoked_at is None:
        display.revoked_at = now
        session.flush()
        logger.info("display %s revoked", display.id)
    return display


@dataclass(frozen=True)
class Seen:
    """A live display token as one poll sees it."""

    id: int
    site_id: int
    locale: str
    last_seen_at: dt.datetime | None
    version: int


def live_display(session, plain: str) -> Seen | None:
    """The unrevoked display ``plain`` opens, with its site's change counter: one indexed read."""
    if not plain.startswith("dsp_") or len(plain) != _PLAIN_LENGTH:
        return None
    digest = hash_token(plain)
    row = session.execute(
        select(DisplayToken.id, DisplayToken.site_id, DisplayToken.locale,
               DisplayToken.last_seen_at, DisplayToken.token_hash, LiveVersion.version)
        .outerjoin(LiveVersion, LiveVersion.site_id == DisplayToken.site_id)
        .where(DisplayToken.token_hash == digest, DisplayToken.revoked_at.is_(None))).first()
    # Looked up by its hash (unique index); compared again in constant time for good measure.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Seen(row.id, row.site_id, row.locale, row.last_seen_at, row.version or 0)


def note_seen(session, seen: Seen, now: dt.datetime) -> bool:
    """Record that the display asked, at most once a minute; True when written (caller commits)."""
    if seen.last_seen_at is not None and now - seen.last_seen_at < SEEN_EVERY:
        return False
    session.execute(update(DisplayToken).where(DisplayToken.id == seen.id)
                    .values(last_seen_at=now))
    return True


def displays_on(session, display_ids) -> dict[int, dt.datetime | None]:
    """Of these displays, those not switched off, each with when it was last seen: one query,
    however many (the live socket checks every open one each second)."""
    ids = sorted(set(display_ids))
    if not ids:
        return {}
    return dict(session.execute(select(DisplayToken.id, DisplayToken.last_seen_at).where(
        DisplayToken.id.in_(ids), DisplayToken.revoked_at.is_(None))).all())


def note_seen_many(session, display_ids, now: dt.datetime) -> None:
    """Record that these displays are on (a screen holds each one's socket); caller commits."""
    session.execute(update(DisplayToken).where(DisplayToken.id.in_(sorted(set(display_ids))))
                    .values(last_seen_at=now))
