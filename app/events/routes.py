"""The event stream: new alert rows and alert events of the viewer's site, pushed as they land.

The stream polls the database (every ``POLL_SECONDS``) rather than an in-process bus,
because ingest and the scheduler may run in other processes; a browser's EventSource
reconnects by itself and resumes from ``Last-Event-ID``.
"""
from __future__ import annotations

import json
import time

from flask import Response, current_app, request, session, stream_with_context
from flask_login import current_user
from sqlalchemy import func, select

from app.events import bp
from app.models import Alert, AlertEvent, db

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 15
STREAM_SECONDS = 300


def _cursor(site_id: int) -> tuple[int, int]:
    """Where a new stream starts: after everything already stored."""
    alert_id = db.session.scalar(select(func.max(Alert.id)).where(Alert.site_id == site_id)) or 0
    event_id = db.session.scalar(select(func.max(AlertEvent.id))) or 0
    return alert_id, event_id


def _parse_last_event_id(value: str | None) -> tuple[int, int] | None:
    try:
        a, e = (int(part) for part in (value or "").split("-"))
        return a, e
    except ValueError:
        return None


def alert_payload(alert: Alert) -> dict:
    state = alert.state
    return {"id": alert.id, "kind": alert.kind, "subject": alert.subject, "unit_id": alert.unit_id,
            "tier": state.tier if state else alert.tier,
            "status": state.status if state else "open",
            "title": (alert.detail or {}).get("title"), "opened_at": alert.opened_at.isoformat()}


def changes(site_id: int, after: tuple[int, int]) -> tuple[list[tuple[str, dict]], tuple[int, int]]:
    """New alerts and alert events of a site since ``after``; returns (messages, new cursor)."""
    alert_cursor, event_cursor = after
    out = []
    for alert in db.session.execute(select(Alert).where(Alert.site_id == site_id,
                                                        Alert.id > alert_cursor)
                                    .order_by(Alert.id)).scalars():
        out.append(("alert", alert_payload(alert)))
        alert_cursor = alert.id
    rows = db.session.execute(select(AlertEvent, Alert).join(Alert)
                              .where(AlertEvent.id > event_cursor).order_by(AlertEvent.id)).all()
    for event, alert in rows:
        event_cursor = event.id
        if alert.site_id == site_id:
            out.append(("alert-event", {"event": event.kind, "at": event.at.isoformat(),
                                        **alert_payload(alert)}))
    return out, (alert_cursor, event_cursor)


@bp.get("")
def stream():
    site_id = current_user.site_id
    app = current_app._get_current_object()
    start = _parse_last_event_id(request.headers.get("Last-Event-ID")) or _cursor(site_id)
    db.session.remove()  # the stream holds no session between polls

    # A stream ends after a few minutes (and a tablet's at its idle lock): the browser
    # reconnects by itself, and the reconnect goes through the login and idle checks again.
    lifetime = STREAM_SECONDS
    if session.get("via_pin"):
        idle = current_app.config["BRIGADE_TABLET_IDLE_SECONDS"]
        lifetime = min(lifetime, max(1.0, session.get("last_seen", time.time()) + idle - time.time()))
    ends = time.monotonic() + lifetime

    @stream_with_context
    def generate():
        cursor, quiet = start, 0.0
        yield "retry: 2000\n\n"
        while time.monotonic() < ends:
            with app.app_context():
                messages, cursor = changes(site_id, cursor)
                db.session.remove()
            for kind, data in messages:
                yield f"id: {cursor[0]}-{cursor[1]}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
            quiet = 0.0 if messages else quiet + POLL_SECONDS
            if quiet >= HEARTBEAT_SECONDS:
                quiet = 0.0
                yield ": keep-alive\n\n"
            time.sleep(POLL_SECONDS)

    response = Response(generate(), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
