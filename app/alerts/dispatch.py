"""The notification dispatcher: sends due outbox rows, records each outcome, retries with backoff.

``notify_due`` writes ``Notification`` rows (the outbox); this job sends them, off the
ingest path. A send can take as long as the channel's timeout (a dead SMTP server that
accepts and never answers takes all of it), so no database transaction is open while
sending. On SQLite ingest writes to the same file, and a write transaction held across a
slow send would hold ingest back for as long. One run is therefore three steps:

1. **claim** (short transaction, committed here): select the due pending rows
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), push each one's ``next_attempt_at`` a lease
   ahead so that no other dispatcher picks it up meanwhile (and one that crashed mid-run
   frees it when the lease runs out), copy what the senders need, commit;
2. **send** with no transaction open, each row through its channel's sender;
3. **record** the outcomes as guarded UPDATEs, left for the caller to commit at once.

Delivery is at least once: a row whose outcome was never recorded is sent again after its
lease. Webhook and MQTT payloads carry ``notification_id`` so a receiver can drop the repeat.
"""
from __future__ import annotations

import datetime as dt
import logging
import time

from flask import current_app
from sqlalchemy import select, update

from app.alerts import channels
from app.models import AlertState, Notification, utcnow

logger = logging.getLogger(__name__)

#: Rows sent per run; the rest wait for the next run.
BATCH_SIZE = 100
#: After this many failed attempts a notification is given up ("failed").
MAX_ATTEMPTS = 8
#: Retry delay after the first failure, doubled after each further one, up to the cap.
BACKOFF_FIRST = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(minutes=30)
#: A run starts no new send after this long; rows it did not reach are released at once.
RUN_BUDGET_SECONDS = 300


def backoff(attempts: int) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min … 30 min."""
    doublings = min(max(attempts, 1) - 1, 16)  # 2**16 × 30 s is far past the cap already
    return min(BACKOFF_FIRST * 2 ** doublings, BACKOFF_CAP)


def _copy(row: Notification) -> Notification:
    """A transient copy for the senders: no session, so nothing can lazy-load mid-send."""
    return Notification(id=row.id, alert_id=row.alert_id, channel=row.channel, target=row.target,
                        level=row.level, status=row.status, attempts=row.attempts,
                        next_attempt_at=row.next_attempt_at, body=dict(row.body or {}))


def claim_due(session, now: dt.datetime, lease: dt.timedelta,
              limit: int = BATCH_SIZE) -> list[Notification]:
    """Step 1: claim up to ``limit`` due rows for ``lease`` and COMMIT; return detached copies."""
    # Someone has the alert in hand: repeats still waiting (a retry after a failed send)
    # would only set the buzzer off again, so they are cancelled, not sent.
    handled = select(AlertState.alert_id).where(AlertState.status != "open")
    session.execute(update(Notification).where(Notification.status == "pending",
                                               Notification.alert_id.in_(handled))
                    .values(status="cancelled").execution_options(synchronize_session=False))
    rows = session.execute(
        select(Notification).where(Notification.status == "pending",
                                   Notification.next_attempt_at <= now)
        .order_by(Notification.next_attempt_at, Notification.id).limit(limit)
        .with_for_update(skip_locked=True)).scalars().all()
    claimed = []
    for row in rows:
        # Guarded: on SQLite the SELECT above locks nothing, so only a row still due is ours.
        result = session.execute(
            update(Notification).where(Notification.id == row.id,
                                       Notification.status == "pending",
                                       Notification.next_attempt_at <= now)
            .values(next_attempt_at=now + lease).execution_options(synchronize_session=False))
        if result.rowcount == 1:
            claimed.append(_copy(row))
    session.commit()
    return claimed


def _record(session, sent: Notification, **values) -> bool:
    """Write an outcome unless another dispatcher took the row over after our lease ran out."""
    result = session.execute(
        update(Notification).where(Notification.id == sent.id, Notification.status == "pending",
                                   Notification.attempts == sent.attempts)
        .values(**values).execution_options(synchronize_session=False))
    return result.rowcount == 1


def dispatch_due(session, now: dt.datetime | None = None, senders: dict | None = None) -> dict:
    """Job: send every due notification and record each outcome; returns counts by outcome.

    Commits its claim itself (so call it with nothing else pending in ``session``); the
    outcomes are left for the caller to commit, straight away. ``senders`` maps a channel
    name to ``send(notification, config)``; by default one of each, closed at the end (a
    long-lived worker passes its own ``channels.default_senders()`` to keep MQTT connected).
    """
    now = now or utcnow()
    config = current_app.config
    timeout = config["BRIGADE_SEND_TIMEOUT_SECONDS"]
    # Long enough for the run to finish: its budget plus one send that starts at the end
    # (connect, greeting, commands: a few timeouts).
    lease = dt.timedelta(seconds=RUN_BUDGET_SECONDS + 6 * timeout)
    counts = {"sent": 0, "retrying": 0, "failed": 0, "released": 0}
    own_senders = senders is None
    senders = channels.default_senders() if own_senders else senders
    try:
        due = claim_due(session, now, lease)
        started = time.monotonic()
        outcomes = []  # (notification, reached, error or None, seconds into the run)
        for notification in due:
            if time.monotonic() - started > RUN_BUDGET_SECONDS:
                outcomes.append((notification, False, None, 0.0))
                continue
            error = _send(notification, senders, config)
            outcomes.append((notification, True, error, time.monotonic() - started))
    finally:
        if own_senders:
            channels.close_senders(senders)
    for notification, reached, error, elapsed in outcomes:
        counts[_apply(session, notification, reached, error, now, elapsed)] += 1
    if any(counts.values()):
        logger.info("notifications: %s", counts)
    return counts


def _send(notification: Notification, senders: dict, config) -> str | None:
    """Step 2 for one row: None when delivered, else a short error."""
    sender = senders.get(notification.channel)
    if sender is None:
        return f"no sender for channel {notification.channel!r}"
    try:
        sender(notification, config)
    except channels.ChannelError as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a broken sender must not stop the others
        logger.exception("the %s sender raised", notification.channel)
        return channels.short(exc)
    return None


def _apply(session, n: Notification, reached: bool, error: str | None, now: dt.datetime,
           elapsed: float) -> str:
    """Step 3 for one row: sent, retry later, give up, or (not reached this run) release."""
    if not reached:
        _record(session, n, next_attempt_at=n.next_attempt_at)
        return "released"
    if error is None:
        # An earlier attempt's error stays: with ``attempts`` it shows the send needed retries.
        _record(session, n, status="sent", sent_at=now + dt.timedelta(seconds=elapsed))
        return "sent"
    attempts = n.attempts + 1
    target = channels.target_for_log(n.channel, n.target)
    if attempts >= MAX_ATTEMPTS:
        _record(session, n, status="failed", attempts=attempts, last_error=error)
        logger.warning("notification %s (%s to %s, alert %s) failed %s times, giving up: %s",
                       n.id, n.channel, target, n.alert_id, attempts, error)
        return "failed"
    retry_at = now + backoff(attempts)
    _record(session, n, attempts=attempts, last_error=error, next_attempt_at=retry_at)
    logger.warning("notification %s (%s to %s, alert %s) failed (attempt %s of %s), retrying at "
                   "%s: %s", n.id, n.channel, target, n.alert_id, attempts, MAX_ATTEMPTS,
                   retry_at.isoformat(timespec="seconds"), error)
    return "retrying"
