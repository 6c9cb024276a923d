"""MQTT ingest end to end against a real Mosquitto the tests start on a free port."""
import datetime as dt
import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from app.models import db
from sensors.models import DeadLetter, Reading, Sensor
from app.ingest import make_ingestor
from sensors.mqtt import MqttSettings
from sensors.store import store_batch
from tests.services import wait_until

UTC = dt.timezone.utc
#: Device times a few hours ago: ingest trusts a device clock up to 7 days old, so fixed dates
#: here would turn into receive times (and other tests) a week after they were written.
T0 = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)


def publisher(port):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def stored(app, model=Reading):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def ingestor(app, mosquitto_port, request):
    protocol = getattr(request, "param", "5")
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, client_id=f"brigade-test-{time.time_ns()}",
                                             protocol=protocol, flush_ms=50))
    worker.start()
    assert worker.connected.wait(10)
    time.sleep(0.2)  # subscriptions acknowledged
    yield worker
    worker.stop()


SAMPLES = [
    ("brigade/fridge-a/reading", {"t": 3.5, "ts": T0.isoformat()}, "brigade/fridge-a", 3.5),
    ("brigade/fridge-b/temperature", "4.25", "brigade/fridge-b", 4.25),
    ("tele/coldroom/SENSOR", {"Time": T0.replace(tzinfo=None).isoformat(), "DS18B20": {"Id": "01131B", "Temperature": 39.2}, "TempUnit": "F"}, "tasmota/coldroom", 4.0),
    ("zigbee2mqtt/salad_fridge", {"temperature": 2.8, "battery": 77, "linkquality": 120}, "z2m/salad_fridge", 2.8),
    ("shellies/shellyht-AB12/sensor/temperature", "5.5", "shelly/shellyht-AB12", 5.5),
    ("shellyhtg3-84fce63ad204/events/rpc", {"src": "shellyhtg3-84fce63ad204", "dst": "x", "method": "NotifyStatus", "params": {"ts": 1764244800.0, "temperature:0": {"id": 0, "tC": 1.9, "tF": 35.4}}}, "shelly/shellyhtg3-84fce63ad204", 1.9),
    ("walkin/sensor/walkin_temp/state", "3.75", "esphome/walkin", 3.75),
]


@pytest.mark.parametrize("ingestor", ["5", "3.1.1"], indirect=True)
def test_every_format_lands_from_publish_to_stored_row(app, mosquitto_port, ingestor):
    pub = publisher(mosquitto_port)
    for topic, payload, _, _ in SAMPLES:
        body = payload if isinstance(payload, str) else json.dumps(payload)
        pub.publish(topic, body, qos=1).wait_for_publish(5)
    assert wait_until(lambda: stored(app) == len(SAMPLES)), stored(app)
    with app.app_context():
        rows = db.session.execute(select(Sensor.key, Reading.temperature_c).join(Reading)).all()
    for _, _, key_prefix, celsius in SAMPLES:
        assert any(k.startswith(key_prefix) and t == pytest.approx(celsius, abs=0.01) for k, t in rows), \
            (key_prefix, rows)
    pub.loop_stop()


def test_bad_input_is_dead_lettered_and_ingest_keeps_consuming(app, mosquitto_port, ingestor):
    pub = publisher(mosquitto_port)
    garbage = [("brigade/x/reading", b"{oops"), ("brigade/x/temperature", b"\xff\xfe"),
               ("brigade/x/temperature", b"NaN"), ("brigade/x/temperature", b"-300"),
               ("brigade/x/temperature", b"1000"), ("brigade/x/temperature", b"9" * 1_000_000),
               ("brigade/x/what-is-this", b"1")]
    for i in range(300):  # a flood of garbage with good readings in between
        topic, payload = garbage[i % len(garbage)]
        pub.publish(topic, payload, qos=1)
        if i % 30 == 0:
            pub.publish("brigade/good/reading", json.dumps(
                {"t": 4.0, "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)
    assert wait_until(lambda: stored(app, DeadLetter) == 300 and stored(app) == 10, 30)
    pub.publish("brigade/after/temperature", "3.3", qos=1).wait_for_publish(5)
    assert wait_until(lambda: stored(app) == 11)
    with app.app_context():
        reasons = set(db.session.execute(select(DeadLetter.reason)).scalars())
    assert any("too large" in r for r in reasons) and any("not JSON" in r for r in reasons)
    pub.loop_stop()


def _ingest_process(app, port, tmp_path, client_id):
    import os
    import subprocess
    import sys
    from pathlib import Path
    env = dict(os.environ, BRIGADE_DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               BRIGADE_SECRET_KEY="x", BRIGADE_AUDIT_KEY="y", BRIGADE_INSTANCE_PATH=str(tmp_path),
               BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=str(port),
               BRIGADE_MQTT_CLIENT_ID=client_id, BRIGADE_INGEST_FLUSH_MS="100")
    flask = Path(sys.executable).with_name("flask")
    return subprocess.Popen([str(flask), "--app", "app", "sensors", "ingest"], env=env,
                            stdout=subprocess.DEVNULL, stderr=open(tmp_path / "ingest.log", "ab"))


@pytest.mark.parametrize("clock, total", [
    ("device", 10_000),
    # Past the wrap: the in-flight messages carry packet ids whose earlier owners, 65,535
    # deliveries before, had the same topic and value (5 steady sensors) and were acknowledged.
    ("receive", 70_000),
])
def test_killed_and_restarted_ingest_stores_every_reading_exactly_once(app, mosquitto_port, tmp_path,
                                                                       clock, total):
    """With device timestamps, and as bare numbers stored at their receive time (Shelly Gen1,
    ESPHome, plain): values repeat, as a steady fridge's do, so only the delivery can tell a
    redelivery from a new reading."""
    import threading
    client_id = f"brigade-kill-{time.time_ns()}"
    worker = _ingest_process(app, mosquitto_port, tmp_path, client_id)
    pub = publisher(mosquitto_port)
    try:
        # Until the worker has subscribed once, the broker keeps no session for it: repeat a
        # warm-up reading (same timestamp, so it is stored once) until it lands.
        warmup = json.dumps({"t": 4.0, "ts": (T0 - dt.timedelta(hours=1)).isoformat()})
        assert wait_until(lambda: pub.publish("brigade/warmup/reading", warmup, qos=1) and
                          stored(app) == 1, 30), "ingest did not start"
        t0 = T0
        sensors = 10 if clock == "device" else 5  # 65,535 % 5 == 0: same topic after a wrap

        def publish_all():
            for i in range(total):
                if clock == "device":
                    value = round(3 + (i % 40) / 10, 1)
                    payload = {"t": value, "ts": (t0 + dt.timedelta(seconds=i // 10)).isoformat()}
                    pub.publish(f"brigade/fridge-{i % 10}/reading", json.dumps(payload), qos=1)
                else:  # each sensor steady at its own value
                    sent = pub.publish(f"brigade/fridge-{i % 5}/temperature", str(3 + i % 5 / 10),
                                       qos=1)
                    if i % 5_000 == 4_999:
                        # paho gives a new message a packet id when it is queued and takes over
                        # the id of one still queued 65,535 messages back: keep fewer queued.
                        sent.wait_for_publish(60)

        sender = threading.Thread(target=publish_all)
        sender.start()
        kill_after = 2_000 if total < 65_535 else 66_000
        assert wait_until(lambda: stored(app) > kill_after, 120), stored(app)
        worker.kill()  # SIGKILL: no chance to flush or acknowledge
        worker.wait()
        killed_at = stored(app)
        time.sleep(1.0)
        worker = _ingest_process(app, mosquitto_port, tmp_path, client_id)
        sender.join()
        assert wait_until(lambda: stored(app) == total + 1, 180), stored(app)
        time.sleep(1.5)  # anything redelivered late would show up now
        assert stored(app) == total + 1
        assert kill_after < killed_at < total + 1, "the kill did not land mid-run"
        with app.app_context():
            per_sensor = dict(db.session.execute(
                select(Sensor.key, func.count(Reading.id)).join(Reading).group_by(Sensor.key)).all())
        assert per_sensor.pop("brigade/warmup") == 1
        assert sorted(per_sensor.values()) == [total // sensors] * sensors
    finally:
        worker.terminate()
        worker.wait(10)
        pub.loop_stop()


def test_workers_on_a_shared_subscription_split_the_stream_and_store_each_reading_once(app, mosquitto_port):
    group, ns = f"brigade{time.time_ns()}", time.time_ns()
    workers = [make_ingestor(app, MqttSettings(port=mosquitto_port, client_id=f"brigade-shared-{i}-{ns}",
                                               shared_group=group, flush_ms=50)) for i in range(2)]
    for worker in workers:
        worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert all(w.connected.wait(10) for w in workers)
        time.sleep(0.3)  # both subscribed
        t0 = T0
        for i in range(2000):
            pub.publish(f"brigade/shared-{i % 8}/reading",
                        json.dumps({"t": 4.0, "ts": (t0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)
        assert wait_until(lambda: stored(app) == 2000, 30), stored(app)
        time.sleep(0.5)
        assert stored(app) == 2000
        received = [w.stats["received"] for w in workers]
        assert sum(received) == 2000 and min(received) > 0, received  # each message to one worker
    finally:
        pub.loop_stop()
        for worker in workers:
            worker.stop()


def test_a_clean_stop_acknowledges_everything_it_stored(app, mosquitto_port):
    settings = MqttSettings(port=mosquitto_port, client_id=f"brigade-clean-{time.time_ns()}",
                            flush_ms=50)
    worker = make_ingestor(app, settings)
    worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        t0 = T0
        for i in range(500):
            pub.publish("brigade/clean/reading",
                        json.dumps({"t": 4.0, "ts": (t0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)
        assert wait_until(lambda: stored(app) == 500, 20)
    finally:
        pub.loop_stop()
        worker.stop()  # right after the last commit: its acks must still reach the broker
    again = make_ingestor(app, settings)
    again.start()
    try:
        assert again.connected.wait(10)
        time.sleep(1.0)
        assert again.stats["received"] == 0  # nothing left unacknowledged to redeliver
    finally:
        again.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_committed_but_never_acknowledged_are_not_stored_again(app, mosquitto_port, protocol):
    """The crash between commit and acknowledgement, made certain: the broker redelivers
    everything, and bare numbers (stored at their receive time, values repeating) are
    recognised by their packet ids, not by their values."""
    settings = MqttSettings(port=mosquitto_port, client_id=f"brigade-noack-{time.time_ns()}",
                            flush_ms=50, protocol=protocol)
    first = make_ingestor(app, settings)
    first._ack = lambda mids, epoch, newest=None: None  # never acknowledges
    first.start()
    pub = publisher(mosquitto_port)
    try:
        assert first.connected.wait(10)
        time.sleep(0.3)
        for i in range(300):
            pub.publish(f"brigade/noack-{i % 3}/temperature", str(round(3 + (i % 5) / 10, 1)), qos=1)
        assert wait_until(lambda: stored(app) == 300, 30), stored(app)
    finally:
        pub.loop_stop()
        first.stop()
    second = make_ingestor(app, settings)
    second.start()
    try:
        assert wait_until(lambda: second.stats["received"] == 300, 30), second.stats
        time.sleep(0.5)
        assert stored(app) == 300
        assert second.stats["duplicates"] == 300
    finally:
        second.stop()


def test_a_broker_restart_mid_stream_loses_and_duplicates_nothing(app, tmp_path):
    """Mosquitto with persistence (as deploy/mosquitto.conf), stopped and started again while
    a sensor publishes: ingest reconnects to its kept session and every reading lands once."""
    import paho.mqtt.client as paho
    from tests.services import Mosquitto
    broker = Mosquitto(tmp_path / "mosquitto", persistent=True)
    port = broker.start()
    worker = make_ingestor(app, MqttSettings(port=port, client_id=f"brigade-restart-{time.time_ns()}",
                                             flush_ms=50))
    sensor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sensor-{time.time_ns()}",
                         protocol=paho.MQTTv311, clean_session=False)
    sensor.reconnect_delay_set(min_delay=1, max_delay=2)
    try:
        worker.start()
        assert worker.connected.wait(10)
        time.sleep(0.3)
        sensor.connect("127.0.0.1", port)
        sensor.loop_start()

        def publish(first, last):
            for i in range(first, last):
                sensor.publish(f"brigade/restart-{i % 4}/reading", json.dumps(
                    {"t": 4.0, "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)
        publish(0, 1000)
        assert wait_until(lambda: stored(app) >= 200, 20)
        broker.stop()      # SIGTERM: Mosquitto writes its sessions and queues to disk
        publish(1000, 1500)  # while it is down: the sensor's client keeps them
        broker.start()     # same port; ingest and the sensor reconnect by themselves
        assert wait_until(lambda: stored(app) == 1500, 60), stored(app)
        time.sleep(1.0)
        assert stored(app) == 1500
        assert worker.connected.is_set()
    finally:
        sensor.loop_stop()
        worker.stop()
        broker.stop()


def test_a_database_outage_holds_the_batch_unacknowledged_and_retries(app, mosquitto_port, monkeypatch):
    from sqlalchemy.exc import OperationalError
    real, failures = store_batch, []

    def down_twice(session, messages):
        if len(failures) < 2:
            failures.append(len(messages))
            raise OperationalError("INSERT …", {}, Exception("the database is down"))
        return real(session, messages)
    acks = []
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, flush_ms=50,
                                             client_id=f"brigade-dbdown-{time.time_ns()}"))
    worker.store = down_twice
    real_ack = worker._ack
    worker._ack = lambda mids, epoch, newest=None: (acks.append((len(failures), len(mids))),
                                                    real_ack(mids, epoch, newest))[1]
    worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        for i in range(100):
            pub.publish("brigade/dbdown/reading",
                        json.dumps({"t": 4.0, "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)
        assert wait_until(lambda: stored(app) == 100, 30), stored(app)
        assert worker.stats["db_errors"] == 2 and len(failures) == 2
        assert acks and all(failed == 2 for failed, _ in acks)  # no ack before a commit
        assert sum(n for _, n in acks) == 100
    finally:
        pub.loop_stop()
        worker.stop()


def test_ingest_is_storing_again_within_2_s_of_postgresql_coming_back(mosquitto_port, tmp_path,
                                                                     caplog):
    """A real outage: ingest's own PostgreSQL crashes and comes back 4 s later. The held
    readings are committed within 2 s of its return (no long backoff), nothing is lost, and
    the outage logs one traceback, then a line per retry."""
    import logging

    from tests.factories import make_app, reset_schema
    from tests.services import Postgres, ServiceUnavailable
    server = Postgres()
    try:
        url = server.start()
    except (ServiceUnavailable, KeyError, OSError) as exc:
        from tests.factories import unavailable
        unavailable(f"PostgreSQL: {exc}")
    app = make_app(url, tmp_path / "instance")
    worker = None
    pub = publisher(mosquitto_port)
    try:
        reset_schema(app)
        worker = make_ingestor(app, MqttSettings(port=mosquitto_port, flush_ms=50,
                                                 client_id=f"brigade-pgdown-{time.time_ns()}"))
        worker.start()
        assert worker.connected.wait(10)
        time.sleep(0.3)

        def send(start, n):
            for i in range(start, start + n):
                pub.publish("brigade/pgdown/reading", json.dumps(
                    {"t": 4.0, "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)

        send(0, 20)
        assert wait_until(lambda: stored(app) == 20, 15), stored(app)
        caplog.set_level(logging.INFO, logger="sensors.mqtt")
        caplog.clear()
        server.halt()
        send(20, 30)
        time.sleep(4)  # down: the batch is held, probes fail
        assert worker.stats["stored"] == 20
        server.resume()
        back = time.monotonic()
        assert wait_until(lambda: stored(app) == 50, 10), "the held readings never landed"
        assert time.monotonic() - back <= 2.0, f"{time.monotonic() - back:.1f} s after the return"
        records = [r for r in caplog.records if r.name == "sensors.mqtt"]
        assert sum(1 for r in records if r.exc_info) == 1, [r.getMessage() for r in records]
        assert any("database back" in r.getMessage() for r in records)
    finally:
        pub.loop_stop()
        if worker is not None:
            worker.stop()
        with app.app_context():
            db.engine.dispose()
        server.stop()


def test_a_message_the_database_refuses_is_dead_lettered_and_the_rest_land(app, mosquitto_port, monkeypatch):
    """Bad input never stops ingest, even input the parsers let through and the database
    refuses: the batch is stored one by one and the refused message kept as a dead letter."""
    from sqlalchemy.exc import DataError
    real = store_batch

    def refuse_poison(session, messages):
        if any(m.payload == b"5.5" for m in messages):
            raise DataError("INSERT …", {}, Exception("value refused"))
        return real(session, messages)
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, flush_ms=200,
                                             client_id=f"brigade-poison-{time.time_ns()}"))
    worker.store = refuse_poison
    worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        for i in range(50):
            pub.publish(f"brigade/poison-{i % 5}/temperature", "5.5" if i == 25 else "4.0", qos=1)
        assert wait_until(lambda: stored(app) == 49 and stored(app, DeadLetter) == 1, 20), \
            (stored(app), stored(app, DeadLetter))
        pub.publish("brigade/after/temperature", "3.0", qos=1).wait_for_publish(5)
        assert wait_until(lambda: stored(app) == 50, 10)  # and ingest goes on
        with app.app_context():
            letter = db.session.execute(select(DeadLetter)).scalar_one()
        assert letter.payload == b"5.5" and "refused by the database: DataError" in letter.reason
    finally:
        pub.loop_stop()
        worker.stop()


def test_ingest_survives_failing_to_write_even_the_dead_letter(app, mosquitto_port, monkeypatch):
    import sensors.mqtt
    from sqlalchemy.exc import DataError
    real_store, real_row, broken = store_batch, sensors.mqtt.dead_letter_row, []

    def refuse_poison(session, messages, site_id=None):
        if any(m.payload == b"5.5" for m in messages):
            raise DataError("INSERT …", {}, Exception("value refused"))
        return real_store(session, messages, site_id)

    def fail_once(*args, **kwargs):
        if not broken:
            broken.append(True)
            raise RuntimeError("the dead-letter table is not there either")
        return real_row(*args, **kwargs)
    monkeypatch.setattr(sensors.mqtt, "dead_letter_row", fail_once)
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, flush_ms=100,
                                             client_id=f"brigade-poison2-{time.time_ns()}"))
    worker.store = refuse_poison
    worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        for payload in ("4.0", "5.5", "4.1"):
            pub.publish("brigade/poison2/temperature", payload, qos=1)
        # The first try at the dead letter fails: the batch is held and tried again, and the
        # consumer thread lives on.
        assert wait_until(lambda: stored(app) == 2 and stored(app, DeadLetter) == 1, 20)
        assert broken and worker._consumer.is_alive()
    finally:
        pub.loop_stop()
        worker.stop()


@pytest.mark.parametrize("client", ["batching", "stock"])
def test_a_database_slower_than_the_keepalive_holds_the_stream_without_losing_the_connection(
        app, mosquitto_port, client):
    """Back-pressure is the broker's (MQTT 5 Receive Maximum), not a sleep in paho's thread:
    with the database stalled for three keepalives, the connection stays up, no more than
    receive_maximum messages wait in ingest, and everything lands once the database is back."""
    stall, seen = threading.Event(), []
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, flush_ms=20, keepalive=2,
                                             receive_maximum=20, batch_size=10, client=client,
                                             client_id=f"brigade-stall-{time.time_ns()}"))
    real = worker.store

    def slow_database(session, messages):
        stall.wait(7)  # three keepalives and more
        return real(session, messages)
    worker.store = slow_database
    disconnects = []
    on_disconnect = worker.client.on_disconnect
    worker.client.on_disconnect = lambda *a: (disconnects.append(a), on_disconnect(*a))
    on_message = worker.client.on_message
    worker.client.on_message = lambda *a: (on_message(*a), seen.append(len(worker.queue)))
    worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        for i in range(200):
            pub.publish("brigade/stall/reading",
                        json.dumps({"t": 4.0, "ts": (T0 + dt.timedelta(seconds=i)).isoformat()}), qos=1)
        time.sleep(6.5)  # the database is stalled all along
        assert disconnects == [] and worker.connected.is_set()
        assert 0 < max(seen) <= 20 and stored(app) == 0
        stall.set()
        assert wait_until(lambda: stored(app) == 200, 30), stored(app)
        assert disconnects == []
    finally:
        stall.set()
        pub.loop_stop()
        worker.stop()


def test_the_broker_confirms_ingests_acks_and_ingest_records_how_far(app, ingestor, mosquitto_port):
    """Each batch's acks are followed by a round trip; the next batch records what it confirmed,
    so that after the packet ids wrap a redelivery is never matched to an acknowledged message."""
    from sensors.models import IngestSession
    pub = publisher(mosquitto_port)
    try:
        pub.publish("brigade/confirm/temperature", "4.0", qos=1).wait_for_publish(5)
        assert wait_until(lambda: stored(app) == 1, 10)
        time.sleep(0.3)  # the UNSUBACK is back
        pub.publish("brigade/confirm/temperature", "4.0", qos=1).wait_for_publish(5)
        assert wait_until(lambda: stored(app) == 2, 10)
    finally:
        pub.loop_stop()
    with app.app_context():
        row = db.session.get(IngestSession, ingestor.session_key)
        first = db.session.execute(select(Reading.received_at).order_by(Reading.id)).scalars().first()
    assert row is not None and row.acks_confirmed_through == first


@pytest.mark.parametrize("client", ["batching", "stock"])
def test_what_a_renumbering_broker_resends_after_a_lost_connection_is_stored_once(
        app, mosquitto_port, client):
    """RabbitMQ, and NATS on another node, resend with new packet ids. The connection ends while
    ingest commits a batch, so its acks are never sent; the broker resends that batch (and all
    in flight) renumbered. Steady bare numbers stored at receive time: by packet id alone each
    committed one would be stored again."""
    from tests.services import RenumberingProxy
    proxy = RenumberingProxy(mosquitto_port)
    worker = make_ingestor(app, MqttSettings(port=proxy.port, flush_ms=50, client=client,
                                             client_id=f"brigade-renumber-{time.time_ns()}"))
    real, severed = worker.store, threading.Event()

    def connection_lost_while_committing(session, messages, **kwargs):
        if not severed.is_set():
            severed.set()
            proxy.sever()
            assert wait_until(lambda: not worker.connected.is_set(), 10)
        return real(session, messages, **kwargs)
    worker.store = connection_lost_while_committing
    worker.start()
    pub = publisher(mosquitto_port)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        for _ in range(60):
            pub.publish("shellies/shellyht-steady/sensor/temperature", "4.0", qos=1)
        assert wait_until(lambda: stored(app) >= 60, 30), stored(app)
        time.sleep(2)  # anything resent late would show now
        assert stored(app) == 60
        assert severed.is_set() and proxy.renumbered > 60  # the broker did resend, renumbered
        assert worker.stats["duplicates"] > 0 and not worker._resent
    finally:
        pub.loop_stop()
        worker.stop()
        proxy.close()


def test_with_the_database_stalled_the_queue_holds_no_more_than_its_bytes(app, mosquitto_port):
    """400 messages of 1 MB took ingest from 87 to 478 MiB with the database down. Payloads are
    cut at receive, and the broker is asked for no more in flight than fit the queue's bytes:
    with a 1 MiB queue and 300 messages of 15 KiB (valid, kept whole) waiting, it holds < 1 MiB."""
    from sensors.store import QUEUED_MESSAGE_MAX_BYTES
    stall, held = threading.Event(), []
    settings = MqttSettings(port=mosquitto_port, flush_ms=20, batch_size=10,
                            queue_bytes=1024 * 1024, client_id=f"brigade-bytes-{time.time_ns()}")
    assert settings.in_flight == 1024 * 1024 // QUEUED_MESSAGE_MAX_BYTES < settings.receive_maximum
    worker = make_ingestor(app, settings)
    real = worker.store

    def stalled_database(session, messages, **kwargs):
        stall.wait(20)
        return real(session, messages, **kwargs)
    worker.store = stalled_database
    on_message = worker.client.on_message

    def measure(*args):
        on_message(*args)
        held.append(sum(len(r.message.payload) + len(r.message.topic) for r in list(worker.queue)))
    worker.client.on_message = measure
    worker.start()
    pub = publisher(mosquitto_port)
    pad = "x" * (15 * 1024)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.3)
        for i in range(300):
            pub.publish("zigbee2mqtt/big", json.dumps(  # Zigbee2MQTT passes extra fields on
                {"temperature": 4.0, "last_seen": (T0 + dt.timedelta(seconds=i)).isoformat(),
                 "description": pad}), qos=1)
        time.sleep(3)  # the database is stalled all along
        assert stored(app) == 0 and 10 * 15 * 1024 < max(held) < 1024 * 1024
        stall.set()
        assert wait_until(lambda: stored(app) == 300, 30), stored(app)
    finally:
        stall.set()
        pub.loop_stop()
        worker.stop()
