"""MQTT ingest: paho callbacks hand messages to a queue; a consumer stores them in batches.

Nothing is acknowledged to the broker before the batch holding it is committed
(paho's manual ack), and the session is persistent (fixed client id; MQTT 5
session expiry, or clean session off on 3.1.1), so a crash or a restart
loses nothing: the broker redelivers what was not acknowledged, and idempotent
storage makes the redelivery harmless.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import Callable, ContextManager

import paho.mqtt.client as mqtt
from sqlalchemy import insert, text
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from sensors.formats import SUBSCRIPTIONS
from sensors.models import DeadLetter
from sensors.batching_client import BatchingClient, check_paho
from sensors.mqtt_client import connect_properties, make_client
from sensors.store import (QUEUED_MESSAGE_MAX_BYTES, BatchResult, Message, confirm_acks,
                           dead_letter_row, digest_of, received, store_batch)

logger = logging.getLogger(__name__)
#: The database cannot take anything now (down, locked, connection lost): retry the batch.
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError)
#: While the database is unavailable, how often ingest probes it (a trivial query).
RETRY_PROBE_S = 0.25
#: No new message for this long: store what has arrived without waiting for flush_ms.
IDLE_GAP_S = 0.02
UTC = dt.timezone.utc
#: Ingest's client, by BRIGADE_MQTT_CLIENT; bench/ingest.py measures both.
CLIENTS = {"batching": BatchingClient, "stock": mqtt.Client}


def _first_line(exc: BaseException) -> str:
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0] if text_ else ''}"[:300]


def refusal_hint(reason: str) -> str:
    """What to change when the broker refuses ingest's connection for ``reason``."""
    reason = reason.lower()
    if "protocol" in reason:
        return " (a broker without MQTT 5: set BRIGADE_MQTT_PROTOCOL=3.1.1)"
    if "user name" in reason or "authoriz" in reason or "authoris" in reason:
        return " (check BRIGADE_MQTT_USERNAME / BRIGADE_MQTT_PASSWORD and the broker's ACL)"
    if "client identifier" in reason:
        return " (check BRIGADE_MQTT_CLIENT_ID: one per ingest worker)"
    return ""


@dataclass(frozen=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    client_id: str = "brigade-ingest"
    protocol: str = "5"                 # "5" or "3.1.1"
    shared_group: str | None = None     # MQTT 5 shared subscription group for several workers
    session_expiry: int = 7 * 86400     # seconds the broker keeps our session while we are away
    batch_size: int = 1000
    flush_ms: int = 200
    keepalive: int = 30
    #: MQTT 5: at most this many messages unacknowledged at once — the broker holds the rest,
    #: which is ingest's back-pressure (on 3.1.1 the broker's own in-flight limit does it).
    receive_maximum: int = 10_000
    #: What ingest's queue may hold at most: receive_maximum is lowered so that this many
    #: messages of the largest size kept (sensors.store.QUEUED_MESSAGE_MAX_BYTES) fit.
    queue_bytes: int = 64 * 1024 * 1024
    #: "batching": sensors.batching_client (what the ingest targets need); "stock": plain paho.
    client: str = "batching"

    @classmethod
    def from_config(cls, cfg) -> MqttSettings:
        return cls(host=cfg["BRIGADE_MQTT_HOST"] or "127.0.0.1", port=cfg["BRIGADE_MQTT_PORT"],
                   username=cfg["BRIGADE_MQTT_USERNAME"], password=cfg["BRIGADE_MQTT_PASSWORD"],
                   tls=cfg["BRIGADE_MQTT_TLS"], ca_file=cfg["BRIGADE_MQTT_CA_FILE"],
                   client_id=cfg["BRIGADE_MQTT_CLIENT_ID"], protocol=cfg["BRIGADE_MQTT_PROTOCOL"],
                   shared_group=cfg["BRIGADE_MQTT_SHARED_GROUP"],
                   session_expiry=cfg["BRIGADE_MQTT_SESSION_EXPIRY"],
                   client=cfg["BRIGADE_MQTT_CLIENT"],
                   batch_size=cfg["BRIGADE_INGEST_BATCH_SIZE"], flush_ms=cfg["BRIGADE_INGEST_FLUSH_MS"],
                   queue_bytes=cfg["BRIGADE_INGEST_QUEUE_MB"] * 1024 * 1024)

    @property
    def in_flight(self) -> int:
        """Receive Maximum as asked of the broker: within the queue's bytes, whatever arrives."""
        return max(1, min(self.receive_maximum, self.queue_bytes // QUEUED_MESSAGE_MAX_BYTES))


@dataclass(frozen=True, slots=True)
class Received:
    """A message as the paho thread saw it, and on which connection (acks are per connection)."""

    message: Message
    connection: int


class Ingestor:
    """One MQTT ingest worker: a paho network thread and a consumer thread."""

    def __init__(self, settings: MqttSettings, sessions: Callable[[], ContextManager],
                 store: Callable[..., BatchResult] = store_batch, on_batch=None):
        #: ``sessions()`` opens a database session for one transaction (closed, and rolled
        #: back if not committed, on leaving); the caller owns the database.
        self.sessions = sessions
        #: ``store(session, messages) -> BatchResult``; the caller binds what it needs
        #: (``offset_history``) to :func:`sensors.store.store_batch`.
        self.store = store
        self.settings = settings
        #: Packet ids are per broker session: redeliveries are recognised by (this, packet id).
        self.session_key = f"{settings.host}:{settings.port}/{settings.client_id}"
        self._round_trip_topic = f"brigade/ingest-round-trip/{settings.client_id}"
        self.on_batch = on_batch  # called with (BatchResult) after each commit (alerts hook)
        # The hand-off: paho appends, the consumer takes whole batches. A deque and an Event
        # instead of queue.Queue: no lock and notify per message on either side.
        self.queue: deque[Received] = deque()
        self._wake = threading.Event()
        #: Which connection this is: moves on when one ends and before the next begins, so
        #: an acknowledgement meant for an earlier connection is dropped, never sent on a new
        #: one (where its packet id names another message, or it would precede CONNECT).
        self.epoch = 0
        self._ack_lock = threading.Lock()
        self.connected = threading.Event()
        self._disconnected = threading.Event()
        self._round_trips: dict[int, threading.Event] = {}
        self._round_trip_lock = threading.Lock()
        #: UNSUBSCRIBE packet id -> newest receive time of the batch whose acks it follows.
        self._confirming: dict[int, dt.datetime] = {}
        #: The broker has our acks for everything received up to this (see IngestSession).
        self._confirmed_through: dt.datetime | None = None
        self._recorded_through: dt.datetime | None = None
        #: Digest -> messages committed on a connection that ended before their acks were
        #: sent: the broker resends them, perhaps under new packet ids (see store_batch).
        #: Consumer thread only; paho's thread only raises _forget_resent.
        self._resent: Counter[str] = Counter()
        self._resent_epoch = 0
        self._forget_resent = False
        self.stopping = threading.Event()
        self.stats = {"received": 0, "stored": 0, "duplicates": 0, "rejected": 0, "batches": 0,
                      "db_errors": 0}
        self.client = self._make_client()
        self._consumer = threading.Thread(target=self._consume, name="brigade-ingest-consumer",
                                          daemon=True)

    # --- paho side: hand off only ----------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        if self.settings.client == "batching":
            check_paho()  # its paho internals, or a clear error naming the way out
        client = make_client(self.settings, self.settings.client_id, persistent=True,
                             manual_ack=True, client_class=CLIENTS[self.settings.client])
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_pre_connect = self._next_epoch
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_unsubscribe = self._on_unsubscribe
        return client

    def _next_epoch(self, client=None, userdata=None) -> None:
        with self._ack_lock:
            self.epoch += 1
            with self._round_trip_lock:
                self._confirming.clear()  # those questions went with the connection

    def _ack(self, mids: list[int], epoch: int, newest: dt.datetime | None = None) -> bool:
        """Acknowledge committed messages, unless their connection is gone (then it redelivers,
        and this returns False).

        Then ask the broker a question it answers only after handling those acks: its answer
        confirms them up to ``newest`` (a receive time), which the next batch records.
        """
        with self._ack_lock:
            if epoch != self.epoch:
                return False
            if isinstance(self.client, BatchingClient):
                self.client.ack_many(mids)  # one write for the batch
            else:
                ack = self.client.ack
                for mid in mids:
                    ack(mid, 1)
            if newest is not None:
                rc, mid = self.client.unsubscribe(self._round_trip_topic)
                if rc == mqtt.MQTT_ERR_SUCCESS and mid is not None:
                    with self._round_trip_lock:
                        self._confirming[mid] = newest
            return True

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            logger.error("MQTT connection to %s:%s refused: %s%s", self.settings.host,
                         self.settings.port, reason_code, refusal_hint(str(reason_code)))
            return
        topics = [f"$share/{self.settings.shared_group}/{t}" if self.settings.shared_group else t
                  for t in SUBSCRIPTIONS]
        # Subscribing on every connect: a broker that lost our session still gets them.
        # QoS 1, so the broker downgrades anything sent at QoS 2: every message is acked alike.
        client.subscribe([(t, 1) for t in topics])
        if not flags.session_present:
            self._forget_resent = True  # a new session: the broker resends nothing
        self.connected.set()
        logger.info("MQTT connected to %s:%s (session present: %s)", self.settings.host,
                    self.settings.port, flags.session_present)

    def _on_connect_fail(self, client, userdata):
        logger.warning("MQTT broker %s:%s cannot be reached; retrying", self.settings.host,
                       self.settings.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._next_epoch()
        self.connected.clear()
        self._disconnected.set()
        if not self.stopping.is_set():
            logger.warning("MQTT disconnected (%s); reconnecting", reason_code)

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._round_trip_lock:
            answered = self._round_trips.pop(mid, None)
            confirmed = self._confirming.pop(mid, None)
            if confirmed is not None and (self._confirmed_through is None
                                          or confirmed > self._confirmed_through):
                self._confirmed_through = confirmed
        if answered is not None:
            answered.set()

    def _round_trip(self, timeout: float) -> bool:
        """Ask the broker something and wait for the answer.

        A broker handles a connection's packets in order, so once it answers it has handled
        every acknowledgement sent before the question. (An UNSUBSCRIBE from a filter we never
        subscribed to: harmless, and answered by every broker.)
        """
        answered = threading.Event()
        with self._round_trip_lock:
            rc, mid = self.client.unsubscribe(self._round_trip_topic)
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                return False
            self._round_trips[mid] = answered
        return answered.wait(timeout)

    def _on_message(self, client, userdata, msg):
        # Hand off and return: no waiting here, or paho's thread would stop answering the
        # broker (keepalive). The broker sends at most settings.in_flight unacknowledged
        # messages (MQTT 5; on 3.1.1 its own in-flight limit), and a payload or topic too large
        # for any format is cut now: together they bound this queue in bytes.
        inbox = self.queue
        inbox.append(Received(received(msg.topic, msg.payload, dt.datetime.now(UTC),
                                       dup=bool(msg.dup), mid=msg.mid, qos=msg.qos,
                                       session=self.session_key), self.epoch))
        queued = len(inbox)
        # Wake the consumer for the first message of a batch and when a full batch is waiting.
        if (queued == 1 or queued >= self.settings.batch_size) and not self._wake.is_set():
            self._wake.set()

    # --- consumer side -----------------------------------------------------------------------

    def _next_batch(self) -> list[Received]:
        """Up to batch_size messages: as many as are waiting once full or flush_ms has passed."""
        inbox, wake, size = self.queue, self._wake, self.settings.batch_size
        if not inbox:
            wake.clear()
            if not inbox:  # checked again after clear(): a message appended meanwhile set it
                wake.wait(0.2)
            if not inbox:
                return []
        deadline = time.monotonic() + self.settings.flush_ms / 1000
        while len(inbox) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wake.clear()
            waiting = len(inbox)
            if waiting < size:
                # (paho wakes us only for the first message and a full batch: check growth.)
                wake.wait(min(remaining, IDLE_GAP_S))
                # A pause in the stream ends the batch: a lone reading (the one that makes a
                # fridge critical) is stored, and alerted on, at once rather than after flush_ms.
                if len(inbox) == waiting:
                    break
        popleft = inbox.popleft
        batch = [popleft() for _ in range(min(size, len(inbox)))]
        if batch[0].connection != batch[-1].connection:
            # One connection per batch: what an ended connection delivered is committed (and
            # known unacknowledged) before what the next one resends is looked at.
            first = batch[0].connection
            cut = next(i for i, r in enumerate(batch) if r.connection != first)
            inbox.extendleft(reversed(batch[cut:]))
            batch = batch[:cut]
        return batch

    def _consume(self) -> None:
        while not (self.stopping.is_set() and not self.queue):
            batch = self._next_batch()
            if not batch:
                continue
            result = self._store_held(batch)
            if result is None:
                return  # stopping, not acknowledged: the broker redelivers after restart
            # A message from an earlier connection is redelivered by the broker on the new
            # one; acking its old id now would acknowledge some other message (_ack drops the
            # acks if the connection changes meanwhile, too).
            epoch = self.epoch
            acked = [r.message for r in batch if r.message.qos == 1 and r.connection == epoch]
            unacked = [r.message for r in batch if r.message.qos == 1 and r.connection != epoch]
            if not self._ack([m.mid for m in acked], epoch,
                             max((m.received_at for m in acked), default=None)):
                unacked += acked
            self._expect_resent(batch, result, unacked)
            self.stats["received"] += len(batch)
            self.stats["stored"] += result.stored
            self.stats["duplicates"] += result.duplicates
            self.stats["rejected"] += result.rejected
            self.stats["batches"] += 1
            if self.on_batch is not None:
                try:
                    self.on_batch(result)
                except Exception:  # noqa: BLE001 - a follower's failure never stops ingest
                    logger.exception("after-batch hook failed")

    def _store(self, batch: list[Received]) -> BatchResult:
        confirmed = self._confirmed_through
        if self._forget_resent:
            self._forget_resent = False
            self._resent.clear()
        with self.sessions() as session:
            if confirmed is not None and confirmed != self._recorded_through:
                confirm_acks(session, self.session_key, confirmed)
            if self._resent:
                result = self.store(session, [r.message for r in batch], resent=self._resent)
            else:
                result = self.store(session, [r.message for r in batch])
            session.commit()
        self._recorded_through = confirmed
        return result

    def _expect_resent(self, batch: list[Received], result: BatchResult,
                       unacked: list[Message]) -> None:
        """Keep count of committed messages whose acks were never sent (the broker resends
        them) until the new connection has resent what it had: once it sends something new."""
        self._resent.subtract(result.resent_taken)
        self._resent = +self._resent  # drop counts at zero
        if self._resent and any(r.connection > self._resent_epoch and not r.message.dup
                                for r in batch):
            self._resent.clear()  # the broker is past its redeliveries: none of those is due
        if unacked:
            self._resent.update(digest_of(m) for m in unacked)
            self._resent_epoch = batch[0].connection

    def _answers(self) -> bool:
        """Whether the database answers a trivial query now (the cheap probe of an outage)."""
        try:
            with self.sessions() as session:
                session.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means: not yet
            return False

    def _store_held(self, batch: list[Received]) -> BatchResult | None:
        """Store the batch, holding it through a database outage; None when stopping first.

        A failure is an outage when it says so (connection lost, locked) or when the database
        does not answer a probe; then the batch is kept and retried as soon as a probe
        (every RETRY_PROBE_S) is answered — no backoff that leaves it idle long after the
        database is back. One traceback per outage, then a line per retry. A failure while
        the database answers is the batch's: it is stored one by one, and what the database
        refuses becomes a dead letter.
        """
        outage, attempts = None, 0
        while True:
            try:
                result = self._store(batch)
                if outage is not None:
                    logger.warning("database back: stored the held batch of %s after %.1f s and "
                                   "%s attempts", len(batch), time.monotonic() - outage, attempts)
                return result
            except Exception as exc:  # noqa: BLE001 - classified below
                failure = exc
            if not isinstance(failure, UNAVAILABLE) and self._answers():
                self.stats["db_errors"] += 1
                logger.exception("a batch of %s was refused; storing it one by one", len(batch))
                try:
                    return self._one_by_one(batch)
                except Exception as exc:  # noqa: BLE001 - not even a dead letter: an outage
                    failure = exc
            self.stats["db_errors"] += 1
            attempts += 1
            if outage is None:
                outage = time.monotonic()
                logger.error("database unavailable; holding a batch of %s and retrying as soon "
                             "as it answers", len(batch), exc_info=failure)
            else:
                logger.warning("database still unavailable after %.1f s (attempt %s): %s",
                               time.monotonic() - outage, attempts, _first_line(failure))
            while True:
                if self.stopping.wait(RETRY_PROBE_S):
                    return None
                if self._answers():
                    break

    def _one_by_one(self, batch: list[Received]) -> BatchResult:
        """Store each message alone; one the database refuses becomes a dead letter.

        A batch the database refuses (not one it cannot take: that is retried) would be
        redelivered and refused forever, stopping ingest for one bad message.
        """
        total = BatchResult()
        for item in batch:
            try:
                with self.sessions() as session:
                    result = self.store(session, [item.message])
                    session.commit()
            except UNAVAILABLE:
                raise
            except Exception as exc:  # noqa: BLE001 - this message is the poison
                logger.error("message on %s refused by the database: %s", item.message.topic,
                             type(exc).__name__)
                with self.sessions() as session:
                    session.execute(insert(DeadLetter), [dead_letter_row(
                        item.message, f"refused by the database: {type(exc).__name__}")])
                    session.commit()
                result = BatchResult(rejected=1, reasons=["refused by the database"])
            total.stored += result.stored
            total.duplicates += result.duplicates
            total.rejected += result.rejected
            total.sensors_seen |= result.sensors_seen
            total.reasons += result.reasons
        return total

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        s = self.settings
        if s.protocol == "5":
            # Room for several batches unacknowledged (we ack per batch), and no more.
            properties = connect_properties(session_expiry=s.session_expiry,
                                            receive_maximum=s.in_flight)
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive, clean_start=False,
                                      properties=properties)
        else:
            self.client.connect_async(s.host, s.port, keepalive=s.keepalive)
        self.client.loop_start()
        self._consumer.start()

    def stop(self, timeout: float = 10) -> None:
        """Store what was received, acknowledge it, then disconnect."""
        self.stopping.set()
        self._consumer.join(timeout)
        if self.connected.is_set():
            # Until the broker has handled the last acks, a successor with our client id that
            # connects at once would take over the session and have them redelivered.
            self._round_trip(timeout)
            self._disconnected.clear()
            self.client.disconnect()
            # paho writes what is queued (the last batch's acks), then DISCONNECT, then calls
            # on_disconnect; loop_stop() before that would drop the acks with the connection.
            self._disconnected.wait(timeout)
        self.client.loop_stop()
        logger.info("ingest stopped: %s", ", ".join(f"{k} {v}" for k, v in self.stats.items()))

    def run_forever(self) -> None:
        import signal
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        done.wait()
        self.stop()
