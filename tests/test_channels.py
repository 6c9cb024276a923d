"""Alert channels end to end: a real SMTP server, an HTTP receiver and an MQTT subscriber.

Alerts come from readings through the real path (store, evaluate, notify_due); the
dispatcher sends the outbox, retries with backoff, and never holds ingest back.
"""
import datetime as dt
import json
import queue
import socket
import threading
import time
import uuid
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from aiosmtpd.controller import Controller
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from app.alerts import channels
from app.alerts.dispatch import MAX_ATTEMPTS, backoff, claim_due, dispatch_due
from app.alerts.engine import evaluate_units
from app.alerts.operations import notify_due
from app.models import Alert, Notification, db
from sensors.store import Message, store_batch
from tests.factories import salad_fridge
from tests.services import free_port

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, tzinfo=UTC)
NOTHING = {"sent": 0, "retrying": 0, "failed": 0, "released": 0}


# --- the receiving ends -----------------------------------------------------------------------

class SmtpInbox:
    """aiosmtpd handler: keeps (recipients, parsed message) for each mail it is given."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos,
                              message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    inbox = SmtpInbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


class Receiver(ThreadingHTTPServer):
    """A webhook endpoint: records each POST; answers with ``statuses`` in turn, then 200."""

    def __init__(self, statuses=()):
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.statuses = list(statuses)
        self.posts = []  # (path, content type, JSON body)
        self.url = f"http://127.0.0.1:{self.server_address[1]}/hooks/secret-token"


class _ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.statuses.pop(0) if self.server.statuses else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """webhook(statuses=()) starts a receiver on a free port."""
    servers = []

    def start(statuses=()):
        server = Receiver(statuses)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def alert_topic():
    return f"brigade-test/alerts-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def mqtt_inbox(mosquitto_port, alert_topic):
    """A subscriber to every site's alert topic on the test Mosquitto: (topic, qos, JSON)."""
    received = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-alert-sub-{time.time_ns()}")
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{alert_topic}/#", qos=1)
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, u, m: received.put((m.topic, m.qos, json.loads(m.payload)))
    client.connect("127.0.0.1", mosquitto_port)
    client.loop_start()
    assert subscribed.wait(10)
    yield received
    client.disconnect()
    client.loop_stop()


class Blackhole:
    """A TCP server that accepts connections and never says a word (a hung SMTP server)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.connections = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections.append(conn)
            self.accepted.set()

    def hang_up(self):
        self.stopping.set()
        self.thread.join()
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def blackhole():
    hole = Blackhole()
    yield hole
    if not hole.stopping.is_set():
        hole.hang_up()


# --- an alert through the real path ----------------------------------------------------------

def readings(start, values, step=60):
    messages = []
    for i, value in enumerate(values):
        at = start + dt.timedelta(seconds=i * step)
        messages.append(Message("brigade/salad/reading",
                                json.dumps({"t": value, "ts": at.isoformat()}).encode(), at))
    return messages


@pytest.fixture
def fridge(ctx, kitchen):
    return salad_fridge(kitchen["site"], T0)


def open_alert(fridge) -> Alert:
    """Twelve minutes at 7 °C: past the 10-minute delay, an alarm (not critical) opens."""
    batch = readings(T0, [7.0] * 12)
    store_batch(db.session, batch)
    db.session.commit()
    evaluate_units(db.session, [fridge.id], batch[-1].received_at)
    db.session.commit()
    [alert] = db.session.execute(select(Alert)).scalars().all()
    return alert


def configure(app, **settings):
    """Only the channels named in ``settings``; plain SMTP on loopback; a short timeout."""
    app.config.update({"BRIGADE_SMTP_HOST": None, "BRIGADE_ALERT_WEBHOOK_URL": None,
                       "BRIGADE_ALERT_MQTT_TOPIC": None, "BRIGADE_SMTP_STARTTLS": False,
                       "BRIGADE_SEND_TIMEOUT_SECONDS": 5,
                       "BRIGADE_SMTP_FROM": "alerts@test.kitchen", **settings})


def notifications():
    db.session.expire_all()
    return db.session.execute(select(Notification).order_by(Notification.id)).scalars().all()


# --- tests ------------------------------------------------------------------------------------

def test_every_channel_delivers_and_each_send_is_recorded(app, fridge, smtp_inbox, webhook,
                                                          mqtt_inbox, mosquitto_port, alert_topic,
                                                          kitchen):
    hook = webhook()
    configure(app, BRIGADE_SMTP_HOST="127.0.0.1", BRIGADE_SMTP_PORT=smtp_inbox.port,
              BRIGADE_ALERT_WEBHOOK_URL=hook.url, BRIGADE_ALERT_MQTT_TOPIC=alert_topic,
              BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=mosquitto_port)
    alert = open_alert(fridge)
    now = alert.opened_at + dt.timedelta(minutes=10)  # unacknowledged: up to the head chef
    notify_due(db.session, now)
    db.session.commit()
    assert sorted(n.channel for n in notifications()) == ["email", "mqtt", "webhook"]

    senders = channels.default_senders()
    try:
        assert dispatch_due(db.session, now, senders) == {**NOTHING, "sent": 3}
        db.session.commit()
        publisher = senders["mqtt"]._client
        # Re-notified five minutes later: the same MQTT connection publishes again.
        notify_due(db.session, now + dt.timedelta(minutes=5))
        db.session.commit()
        assert dispatch_due(db.session, now + dt.timedelta(minutes=5), senders)["sent"] == 3
        db.session.commit()
        assert senders["mqtt"]._client is publisher
    finally:
        channels.close_senders(senders)

    rcpts, email = smtp_inbox.messages[0]
    assert rcpts == ["chef@test.kitchen"] and len(smtp_inbox.messages) == 2
    assert "Salad fridge" in email["Subject"] and "ALARM" in email["Subject"]
    assert email["From"] == "alerts@test.kitchen" and email["To"] == "chef@test.kitchen"
    text = email.get_content()
    for part in ("Unit: Salad fridge", "Temperature now: 7.0 °C", "Limit: 5.0 °C",
                 "escalation 1 (head chef)", "Acknowledge it on the Brigade tablet"):
        assert part in text
    assert "http" not in text

    path, content_type, body = hook.posts[0]
    assert (path, content_type) == ("/hooks/secret-token", "application/json")
    assert body["alert_id"] == alert.id and body["tier"] == "alarm" and body["level"] == 1
    assert body["detail"]["unit"] == "Salad fridge"

    topic, qos, message = mqtt_inbox.get(timeout=10)
    assert topic == f"{alert_topic}/{kitchen['site']}" and qos == 1
    assert message["alert_id"] == alert.id and message["detail"]["value_c"] == 7.0

    rows = notifications()
    assert {n.status for n in rows} == {"sent"} and len(rows) == 6
    assert all(n.sent_at >= now and n.attempts == 0 and n.last_error is None for n in rows)
    ids = {n.id for n in rows if n.channel == "webhook"}
    assert {post[2]["notification_id"] for post in hook.posts} == ids
    # Nothing is due any more: running the job again sends nothing.
    assert dispatch_due(db.session, now + dt.timedelta(minutes=6)) == NOTHING


def test_a_failing_webhook_is_retried_with_backoff_until_it_answers(app, fridge, webhook):
    hook = webhook(statuses=[500])
    configure(app, BRIGADE_ALERT_WEBHOOK_URL=hook.url)
    alert = open_alert(fridge)
    now = alert.opened_at
    notify_due(db.session, now)
    db.session.commit()
    assert dispatch_due(db.session, now) == {**NOTHING, "retrying": 1}
    db.session.commit()
    [row] = notifications()
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.last_error.startswith("HTTP 500")
    assert row.next_attempt_at == now + dt.timedelta(seconds=30)

    assert dispatch_due(db.session, now + dt.timedelta(seconds=29)) == NOTHING
    assert len(hook.posts) == 1
    assert dispatch_due(db.session, now + dt.timedelta(seconds=30)) == {**NOTHING, "sent": 1}
    db.session.commit()
    [row] = notifications()
    assert (row.status, row.attempts) == ("sent", 1)
    assert row.sent_at >= now + dt.timedelta(seconds=30)
    # The retry carries the same notification id: a receiver can tell a repeat.
    assert [post[2]["notification_id"] for post in hook.posts] == [row.id, row.id]


def test_a_dead_smtp_server_is_retried_with_backoff_then_given_up(app, fridge, caplog):
    configure(app, BRIGADE_SMTP_HOST="127.0.0.1", BRIGADE_SMTP_PORT=free_port())  # nobody there
    alert = open_alert(fridge)
    at = alert.opened_at + dt.timedelta(minutes=10)
    notify_due(db.session, at)
    db.session.commit()
    [row] = notifications()
    assert row.channel == "email"
    for attempt in range(1, MAX_ATTEMPTS):
        assert dispatch_due(db.session, at) == {**NOTHING, "retrying": 1}
        db.session.commit()
        [row] = notifications()
        assert (row.status, row.attempts) == ("pending", attempt)
        assert "refused" in row.last_error.lower()
        assert row.next_attempt_at == at + backoff(attempt)
        # Before its time nothing happens.
        assert dispatch_due(db.session, row.next_attempt_at - dt.timedelta(seconds=1)) == NOTHING
        at = row.next_attempt_at
    assert dispatch_due(db.session, at) == {**NOTHING, "failed": 1}
    db.session.commit()
    [row] = notifications()
    assert (row.status, row.attempts, row.sent_at) == ("failed", MAX_ATTEMPTS, None)
    assert dispatch_due(db.session, at + dt.timedelta(days=1)) == NOTHING
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "notification" in r.message]
    assert len(warnings) == MAX_ATTEMPTS and "giving up" in warnings[-1].message
    assert "chef@test.kitchen" in warnings[0].message


def test_a_webhook_url_is_not_logged_or_recorded(app, fridge, caplog):
    url = f"http://127.0.0.1:{free_port()}/hooks/T0KEN-SECRET"
    configure(app, BRIGADE_ALERT_WEBHOOK_URL=url)
    alert = open_alert(fridge)
    notify_due(db.session, alert.opened_at)
    db.session.commit()
    assert dispatch_due(db.session, alert.opened_at)["retrying"] == 1
    db.session.commit()
    [row] = notifications()
    assert "T0KEN" not in row.last_error and "T0KEN" not in caplog.text


def test_a_broken_sender_or_unknown_channel_fails_only_its_own_row(app, fridge, smtp_inbox):
    configure(app, BRIGADE_SMTP_HOST="127.0.0.1", BRIGADE_SMTP_PORT=smtp_inbox.port,
              BRIGADE_ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook", BRIGADE_ALERT_MQTT_TOPIC="a")
    alert = open_alert(fridge)
    notify_due(db.session, alert.opened_at + dt.timedelta(minutes=10))
    db.session.commit()

    def broken(notification, config):
        raise KeyError("bug")
    counts = dispatch_due(db.session, alert.opened_at + dt.timedelta(minutes=10),
                          {"email": channels.send_email, "webhook": broken})
    db.session.commit()
    assert counts == {**NOTHING, "sent": 1, "retrying": 2}
    errors = {n.channel: (n.status, n.last_error) for n in notifications()}
    assert errors["email"] == ("sent", None)
    assert errors["webhook"] == ("pending", "KeyError: 'bug'")
    assert errors["mqtt"] == ("pending", "no sender for channel 'mqtt'")


def test_a_row_being_sent_is_not_picked_up_by_another_dispatcher(app, fridge):
    configure(app, BRIGADE_ALERT_WEBHOOK_URL="http://127.0.0.1:9/hook")
    alert = open_alert(fridge)
    now = alert.opened_at
    notify_due(db.session, now)
    db.session.commit()
    seen = []

    def webhook(notification, config):
        # Mid-send, a second dispatcher (its own app context and session) finds nothing due:
        # the row is claimed, and no transaction of ours is holding anything.
        with app.app_context():
            seen.append(claim_due(db.session, now + dt.timedelta(minutes=1), dt.timedelta(minutes=5)))
    assert dispatch_due(db.session, now, {"webhook": webhook})["sent"] == 1
    db.session.commit()
    assert seen == [[]]
    assert notifications()[0].status == "sent"


def test_a_dead_smtp_server_does_not_slow_ingest(app, fridge, blackhole):
    configure(app, BRIGADE_SMTP_HOST="127.0.0.1", BRIGADE_SMTP_PORT=blackhole.port,
              BRIGADE_SEND_TIMEOUT_SECONDS=30)
    alert = open_alert(fridge)
    now = alert.opened_at + dt.timedelta(minutes=10)
    notify_due(db.session, now)
    db.session.commit()
    outcome = {}

    def dispatcher():
        with app.app_context():
            outcome["counts"] = dispatch_due(db.session, now)
            db.session.commit()
    thread = threading.Thread(target=dispatcher)
    thread.start()
    try:
        # Connected, and waiting for a greeting that will not come until we hang up.
        assert blackhole.accepted.wait(10)
        started = time.perf_counter()
        batch = readings(now, [7.5] * 100, step=1)
        result = store_batch(db.session, batch)
        db.session.commit()
        evaluate_units(db.session, [fridge.id], batch[-1].received_at)  # the after-ingest hook
        db.session.commit()
        took = time.perf_counter() - started
        assert thread.is_alive()  # the dispatcher was stuck in its send the whole time
    finally:
        blackhole.hang_up()
        thread.join(30)
    assert result.stored == 100
    assert took < 1.0, f"ingest took {took:.2f}s while the dispatcher was stuck"
    assert outcome["counts"] == {**NOTHING, "retrying": 1}
    [row] = notifications()
    assert (row.status, row.attempts) == ("pending", 1) and row.last_error


@pytest.mark.parametrize("attempts,delay", [(1, 30), (2, 60), (3, 120), (6, 960), (7, 1800),
                                            (50, 1800)])
def test_backoff_doubles_up_to_half_an_hour(attempts, delay):
    assert backoff(attempts) == dt.timedelta(seconds=delay)


def test_email_text_for_other_kinds():
    subject, text = channels.email_text({
        "alert_id": 7, "kind": "timer_expired", "tier": "alarm", "level": 2,
        "opened_at": "2026-11-27T12:00:00+00:00",
        "detail": {"title": "Cold noodles: served or discarded?", "dish": "Cold noodles",
                   "timer_kind": "plated", "expired_at": "2026-11-27T11:59:00+00:00"}})
    assert subject == "[Brigade] ALARM: Cold noodles: served or discarded?"
    assert "Dish: Cold noodles" in text and "Expired: 2026-11-27 11:59 UTC" in text
    assert "Opened: 2026-11-27 12:00 UTC" in text and "escalation 2 (owner)" in text
    assert "Unit:" not in text


def test_pending_repeats_are_cancelled_once_the_alert_is_acknowledged(app, kitchen):
    from app.alerts.dispatch import dispatch_due
    from app.alerts.operations import acknowledge, raise_alert, queue_notifications
    from app.models import Notification, Staff, db
    app.config.update(BRIGADE_ALERT_WEBHOOK_URL="http://127.0.0.1:9/never")
    with app.app_context():
        alert = raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="unit:x:offline")
        queue_notifications(db.session, alert, 0, alert.opened_at)
        acknowledge(db.session, alert, db.session.get(Staff, kitchen["cook"]), None,
                    corrective_action="Replaced the sensor battery", food_outcome="not_applicable")
        db.session.commit()
        calls = []
        dispatch_due(db.session, senders={"webhook": lambda n, c: calls.append(n)})
        db.session.commit()
        row = db.session.execute(db.select(Notification)).scalar_one()
        assert calls == [] and row.status == "cancelled"


def test_the_daily_summary_reaches_the_head_chef_once_after_six(app, kitchen, smtp_inbox):
    from app.alerts.summary import daily_summary
    from app.checklists.definitions import current_definitions
    from app.checklists.operations import open_run, record_answer, submit_run
    from app.checklists.schedules import slots_for_day
    from app.models import Site, Staff, db
    from tests.factories import at_local
    configure(app, BRIGADE_SMTP_HOST="127.0.0.1", BRIGADE_SMTP_PORT=smtp_inbox.port)
    day = dt.date(2026, 11, 26)
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        cook = db.session.get(Staff, kitchen["cook"])
        definition = current_definitions(db.session)[0]
        slot = slots_for_day(definition.schedules, day, site.timezone)[0]
        run = open_run(db.session, site, definition.key, slot, cook, None, now=at_local(day, "11:05"))
        for item in run.definition.items:
            value = {"passfail": "pass", "temperature": "3"}.get(item.kind)
            if value:
                record_answer(db.session, run, item, cook, None, value=value)
        submit_run(db.session, run, cook, None, now=at_local(day, "11:20"))
        db.session.commit()
        assert daily_summary(db.session, at_local(day + dt.timedelta(days=1), "05:59")) == "0 summaries queued"
        assert daily_summary(db.session, at_local(day + dt.timedelta(days=1), "06:01")) == "1 summaries queued"
        assert daily_summary(db.session, at_local(day + dt.timedelta(days=1), "07:01")) == "0 summaries queued"
        # Through the outbox, like every other send: queued once, sent by the dispatcher.
        assert smtp_inbox.messages == []
        [queued] = db.session.execute(db.select(Notification)).scalars().all()
        assert queued.alert_id is None and queued.status == "pending"
        assert dispatch_due(db.session, at_local(day + dt.timedelta(days=1), "07:02"))["sent"] == 1
        db.session.commit()
        assert dispatch_due(db.session, at_local(day + dt.timedelta(days=1), "07:03"))["sent"] == 0
    [(rcpt, message)] = smtp_inbox.messages
    assert rcpt == ["chef@test.kitchen"] and "summary of 2026-11-26" in message["Subject"]
    body = message.get_content()
    assert "Checklists: 1 of 7 submitted (0 late, 6 not submitted)" in body
    assert "1 waiting for your sign-off" in body


def test_an_anchored_head_is_published_retained_for_whoever_subscribes_later(
        app, kitchen, mosquitto_port, tmp_path):
    """The audit chain's head leaves the database as a retained MQTT message too: a subscriber
    that connects after the publish still gets the newest anchored head."""
    from app.alerts.dispatch import dispatch_due
    from app.anchors import anchor_head, head
    from app.models import Notification
    topic = f"brigade-test/anchor-{uuid.uuid4().hex[:8]}"
    configure(app, BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=mosquitto_port,
              BRIGADE_AUDIT_ANCHOR_TOPIC=topic,
              BRIGADE_AUDIT_ANCHOR_FILE=str(tmp_path / "anchors"))
    with app.app_context():
        said = anchor_head(db.session, force=True)
        db.session.commit()
        assert f"queued, retained, for {topic}" in said
        seq, digest = head(db.session)
        queued = db.session.execute(db.select(Notification)).scalar_one()
        assert (queued.channel, queued.target, queued.body["seq"]) == ("mqtt", topic, seq)
        senders = channels.default_senders()
        try:
            assert dispatch_due(db.session, queued.next_attempt_at, senders)["sent"] == 1
            db.session.commit()
        finally:
            channels.close_senders(senders)
    received = queue.Queue()
    late = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-anchor-{time.time_ns()}")
    late.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    late.on_message = lambda c, u, m: received.put((m.retain, json.loads(m.payload)))
    late.connect("127.0.0.1", mosquitto_port)
    late.loop_start()
    try:
        retained, message = received.get(timeout=10)
    finally:
        late.disconnect()
        late.loop_stop()
    assert retained and (message["seq"], message["hash"]) == (seq, digest)
    assert message["kind"] == "audit_anchor"


def test_an_anchor_topic_inside_what_ingest_reads_is_refused(tmp_path):
    import config
    with pytest.raises(config.ConfigError, match="BRIGADE_AUDIT_ANCHOR_TOPIC"):
        config.load(tmp_path, {"BRIGADE_AUDIT_ANCHOR_TOPIC": "brigade/anchor"})
    assert config.load(tmp_path, {"BRIGADE_AUDIT_ANCHOR_TOPIC": "kitchen/audit-anchor"})[
        "BRIGADE_AUDIT_ANCHOR_TOPIC"] == "kitchen/audit-anchor"
