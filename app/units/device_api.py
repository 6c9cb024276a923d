"""Views: the device-facing HTTP ingest endpoint, POST /api/readings (a bearer token per device)."""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from app.alerts.engine import evaluate_after_ingest
from app.extensions import csrf
from app.models import db, utcnow
from app.models.ingest import IngestToken
from app.security import public
from app.units.ingest import (IDEMPOTENCY_HEADER, MAX_BODY_BYTES, REPLAYED_HEADER, KeyRefused,
                              Reply, fingerprint, idempotency_key, ingest_body, remember,
                              remembered, replay, too_large)
from app.units.tokens import token_from_header
from sensors.store import DEAD_LETTER_KEEP_BYTES

#: The sensor-facing endpoint lives outside /units: devices post to /api/readings.
api = Blueprint("ingest", __name__, url_prefix="/api")


@api.post("/readings")
@public
@csrf.exempt
def readings():
    """Readings from devices that cannot speak MQTT, through the MQTT path's parsing and storage."""
    token = token_from_header(db.session, request.headers.get("Authorization"))
    if token is None:
        response = jsonify(error="missing, unknown or revoked token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="brigade"'
        return response, 401
    try:
        key = idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    except KeyRefused as exc:
        return jsonify(error=str(exc)), 400
    now = utcnow()
    size = request.content_length
    if size is not None and size > MAX_BODY_BYTES:
        try:
            head = request.stream.read(DEAD_LETTER_KEEP_BYTES)
        except RequestEntityTooLarge:
            head = b""
        outcome = too_large(db.session, token.site_id, now, head, size)
    else:
        raw = request.stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:  # a chunked body that did not say its size
            outcome = too_large(db.session, token.site_id, now, raw, len(raw))
        elif key is not None:
            return _reply(_ingest_once(token, key, raw, now))
        else:
            outcome = ingest_body(db.session, token.site_id, raw, now)
    db.session.commit()
    _evaluate_alerts(outcome.sensors_seen)
    return jsonify(outcome.body()), outcome.status


def _evaluate_alerts(sensor_ids: set[int]) -> None:
    """A breach posted over HTTP alerts at once, as one over MQTT does (not at the next sweep).

    The readings are committed already: a failure here is logged, and the sweep retries.
    """
    try:
        evaluate_after_ingest(db.session, sensor_ids)
    except Exception:  # noqa: BLE001 - the post succeeded; alerting catches up in the sweep
        db.session.rollback()
        current_app.logger.exception("evaluating alerts after an HTTP ingest failed")


def _ingest_once(token: IngestToken, key: str, raw: bytes, now: dt.datetime) -> Reply:
    """Ingest under an Idempotency-Key: store and remember, or replay (see app.units.ingest)."""
    token_id, site_id = token.id, token.site_id
    digest = fingerprint(raw)
    prior = remembered(db.session, token_id, key, now)
    if prior is None:
        outcome = ingest_body(db.session, site_id, raw, now)
        try:
            remember(db.session, token_id, key, digest, outcome, now)
            db.session.commit()
            _evaluate_alerts(outcome.sensors_seen)
            return Reply(outcome.status, outcome.body())
        except IntegrityError:
            # A racer with the same key committed first: drop ours, answer with its response.
            db.session.rollback()
            prior = remembered(db.session, token_id, key, now)
    reply = replay(prior, digest)
    db.session.rollback()
    return reply


def _reply(reply: Reply):
    response = jsonify(reply.body)
    if reply.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response, reply.status
