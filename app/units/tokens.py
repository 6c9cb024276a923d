"""HTTP ingest tokens: issued once in plain, kept hashed, revoked; the caller commits."""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets

from flask_babel import gettext as _
from sqlalchemy import select

from app.errors import OperationError
from app.models import Site
from app.models.ingest import IngestToken

logger = logging.getLogger(__name__)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session, site: Site, name: str) -> tuple[IngestToken, str]:
    """A new ingest token for the site; the plain token is returned once, only its hash kept."""
    name = (name or "").strip()
    if not name:
        raise OperationError(_("Give the token a name, e.g. the device that will use it."))
    if len(name) > 120:
        raise OperationError(_("A name is at most 120 characters."))
    plain = "brg_" + secrets.token_urlsafe(32)
    token = IngestToken(site_id=site.id, name=name, token_hash=hash_token(plain))
    session.add(token)
    session.flush()
    logger.info("ingest token %s (%s) created for site %s", token.id, name, site.id)
    return token, plain


def revoke_token(session, token: IngestToken, now: dt.datetime) -> IngestToken:
    """Refuse this token from now on (kept, for the record)."""
    if token.revoked_at is None:
        token.revoked_at = now
        session.flush()
        logger.info("ingest token %s revoked", token.id)
    return token


def token_from_header(session, authorization: str | None) -> IngestToken | None:
    """The live token an ``Authorization: Bearer …`` header carries, or None."""
    scheme, _sep, value = (authorization or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    digest = hash_token(value)
    # Looked up by its hash (a unique index), not compared with every live token: timing can
    # tell an attacker about the SHA-256 of a guess, which says nothing of a token's own bytes.
    token = session.execute(select(IngestToken).where(IngestToken.token_hash == digest,
                                                      IngestToken.revoked_at.is_(None))
                            ).scalar_one_or_none()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    return token
