"""The embedded broker, the simulator's traces and devices, and the single-process wiring."""
import datetime as dt
import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

import config
from app.models import db
from app.runner import start_background
from sensors import formats
from sensors.broker import BrokerError, EmbeddedBroker, ingest_settings
from sensors.models import DeviceState, Reading, Sensor
from app.ingest import make_ingestor
from sensors.mqtt import MqttSettings
from sensors.simulator import (HOUR, MINUTE, BrigadeDevice, Cycle, Doors, Failure, Simulator,
                               SimulatorSettings, Trace, demo_devices)
from tests.services import free_port, wait_until

UTC = dt.timezone.utc
DAY = 24 * HOUR


def count(app, model=Reading):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def publisher(port, client_id="test-publisher"):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@pytest.fixture
def broker():
    server = EmbeddedBroker(free_port())
    server.start()
    yield server
    server.stop()


# --- the embedded broker ---------------------------------------------------------------------


def test_embedded_broker_stores_a_reading_end_to_end(app, broker):
    worker = make_ingestor(app, MqttSettings(port=broker.port, protocol="3.1.1", flush_ms=50,
                                             client_id=f"brigade-test-{time.time_ns()}"))
    worker.start()
    measured = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    try:
        assert worker.connected.wait(10)
        time.sleep(0.2)  # subscriptions acknowledged
        pub = publisher(broker.port)
        pub.publish("brigade/walk-in/reading", json.dumps({"t": 3.5, "ts": measured.isoformat()}),
                    qos=1).wait_for_publish(5)
        assert wait_until(lambda: count(app) == 1)
        pub.disconnect()
        pub.loop_stop()
    finally:
        worker.stop()
    with app.app_context():
        key, celsius, at = db.session.execute(
            select(Sensor.key, Reading.temperature_c, Reading.measured_at).join(Reading)).one()
    assert (key, celsius, at) == ("brigade/walk-in", 3.5, measured)


def test_embedded_broker_keeps_qos1_for_a_persistent_session_while_it_is_away(broker):
    got = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="away-ingest", protocol=mqtt.MQTTv311,
                      clean_session=False)
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("brigade/#", 1)
    sub.loop_start()
    time.sleep(0.3)
    sub.disconnect()
    sub.loop_stop()
    pub = publisher(broker.port)
    for i in range(3):
        pub.publish("brigade/x/temperature", str(i), qos=1).wait_for_publish(5)
    sub.reconnect()
    sub.loop_start()
    assert wait_until(lambda: len(got) == 3, 10), got
    for client in (sub, pub):
        client.disconnect()
        client.loop_stop()


def test_embedded_broker_refuses_a_taken_port_with_a_clear_message(broker):
    second = EmbeddedBroker(broker.port)
    with pytest.raises(BrokerError, match="already in use.*BRIGADE_MQTT_HOST"):
        second.start()
    second.stop()
    assert broker.running


def test_embedded_broker_stops_and_frees_its_port():
    server = EmbeddedBroker(free_port())
    server.start()
    assert server.running
    server.stop()
    assert not server.running
    again = EmbeddedBroker(server.port)  # the port is free again
    again.start()
    again.stop()


def test_embedded_broker_port_setting_is_parsed_strictly(tmp_path):
    assert config.load(tmp_path, {})["BRIGADE_EMBEDDED_BROKER_PORT"] == 1883
    assert config.load(tmp_path, {"BRIGADE_EMBEDDED_BROKER_PORT": "18830"})[
        "BRIGADE_EMBEDDED_BROKER_PORT"] == 18830
    for bad in ("0", "70000", "18 830", "mqtt"):
        with pytest.raises(config.ConfigError, match="BRIGADE_EMBEDDED_BROKER_PORT"):
            config.load(tmp_path, {"BRIGADE_EMBEDDED_BROKER_PORT": bad})


def test_ingest_uses_the_embedded_broker_only_when_no_host_is_configured(tmp_path):
    embedded = ingest_settings(config.load(tmp_path, {"BRIGADE_EMBEDDED_BROKER_PORT": "18830",
                                                      "BRIGADE_MQTT_SHARED_GROUP": "g"}))
    assert (embedded.host, embedded.port, embedded.protocol, embedded.shared_group) == \
        ("127.0.0.1", 18830, "3.1.1", None)
    real = ingest_settings(config.load(tmp_path, {"BRIGADE_MQTT_HOST": "mqtt.kitchen",
                                                  "BRIGADE_MQTT_PORT": "8883",
                                                  "BRIGADE_MQTT_SHARED_GROUP": "g"}))
    assert (real.host, real.port, real.protocol, real.shared_group) == ("mqtt.kitchen", 8883, "5", "g")


# --- traces: pure functions of simulated time ------------------------------------------------

STEADY = Trace("steady", Cycle(3.0, 5.0), doors=Doors(), seed=7)


def test_traces_are_deterministic_for_a_seed():
    assert [STEADY.temperature(t) for t in range(0, 3600, 30)] == \
        [STEADY.temperature(t) for t in range(0, 3600, 30)]
    other = Trace("steady", Cycle(3.0, 5.0), doors=Doors(), seed=8)
    assert [STEADY.temperature(t) for t in range(0, 600, 30)] != \
        [other.temperature(t) for t in range(0, 600, 30)]


@pytest.mark.parametrize("trace", [STEADY] + [d.trace for d in demo_devices(fail_after_s=None)
                                              if d.trace.cycle.low > 0],
                         ids=lambda t: t.name)
def test_a_steady_fridge_stays_within_2_to_6_c_for_a_day_except_with_the_door_open(trace):
    samples = [(t, trace.temperature(t), trace.door_effect(t)) for t in range(0, int(DAY), 30)]
    outside = [(t, c) for t, c, door in samples if not 2.0 <= c <= 6.0 and door == 0]
    assert outside == []
    # It cycles (a sawtooth, not a flat line) and the door does open, a few times an hour.
    quiet = [c for _, c, door in samples if door == 0]
    assert max(quiet) - min(quiet) > 1.5
    spikes = [c for _, c, door in samples if door > 1.5]
    assert spikes and max(spikes) > 6.0
    openings = sum(len(trace.doors.openings(trace.seed, trace.name, h)) for h in range(24))
    assert 24 <= openings <= 24 * 5


def test_door_openings_are_short_spikes():
    doors = Doors()
    for hour in range(48):
        for start, duration, rise in doors.openings(0, "x", hour):
            assert MINUTE <= duration <= 3 * MINUTE and 2.0 <= rise <= 4.0
            assert doors.effect(0, "x", start + duration) == pytest.approx(rise, rel=0.01) or \
                doors.effect(0, "x", start + duration) >= rise  # another opening overlaps
    # Spikes, not a warm fridge: most of the day no door is open or recovering.
    quiet = sum(doors.effect(0, "x", t) == 0 for t in range(0, int(DAY), 30))
    assert quiet > 0.6 * DAY / 30


def test_the_failing_compressor_climbs_past_5_then_8_c_after_its_delay():
    delay = 90 * MINUTE
    trace = Trace("failing", Cycle(3.0, 5.0), seed=3, failure=Failure(at_s=delay, repaired_after_s=None))
    before = [trace.temperature(t) for t in range(0, int(delay), 30)]
    assert max(before) < 6.0
    assert trace.temperature(delay + 5 * MINUTE) < 8.0  # a slow climb, not a jump
    after = [(t - delay, trace.temperature(t)) for t in range(int(delay), int(delay + 2 * HOUR), 30)]
    first_over_5 = next(t for t, c in after if c > 5.0)
    first_over_8 = next(t for t, c in after if c > 8.0)
    assert first_over_5 < first_over_8 <= 60 * MINUTE
    assert min(c for t, c in after if t >= 60 * MINUTE) > 8.0  # and it stays out of limits


def test_a_repaired_compressor_pulls_the_fridge_back_down():
    trace = Trace("fixed", Cycle(3.0, 5.0), failure=Failure(at_s=0, repaired_after_s=HOUR))
    assert trace.temperature(HOUR) > 8.0
    assert max(trace.temperature(HOUR * 3 + t) for t in range(0, 1800, 30)) < 6.0


def test_the_freezer_defrosts_every_six_hours_and_returns():
    freezer = next(d for d in demo_devices() if d.format == "shelly_gen2").trace
    defrost = freezer.defrost
    assert -22.5 < freezer.cycle.mean < -19.0  # "around -20 °C"
    for start in (defrost.first_at_s, defrost.first_at_s + 6 * HOUR, defrost.first_at_s + 12 * HOUR):
        assert freezer.temperature(start - 60) < -17.0
        peak = max(freezer.temperature(start + t) for t in range(0, int(defrost.heat_s), 30))
        assert -8.0 < peak < -2.0
        assert freezer.temperature(start + defrost.heat_s + 60 * MINUTE) < -18.0
    quiet = [freezer.temperature(t) for t in range(0, int(defrost.first_at_s), 30)
             if freezer.door_effect(t) == 0]
    assert max(quiet) < -18.0


def test_the_silent_sensor_stops_publishing_and_leaves_an_offline_will():
    devices = demo_devices(silent_after_s=10 * MINUTE)
    prep = next(d for d in devices if d.format == "tasmota")
    now = dt.datetime.now(UTC)
    assert prep.messages(10 * MINUTE - 30, now) and prep.publishing(10 * MINUTE - 30)
    assert all(prep.messages(t, now) == [] for t in range(10 * 60, 6 * 3600, 30))
    will = prep.will()
    assert (will.topic, will.payload, will.retain) == ("tele/prep-fridge/LWT", b"Offline", True)
    assert formats.parse(will.topic, will.payload)[0].online is False
    # The others keep going.
    assert all(d.messages(HOUR, now) for d in devices if d is not prep)


def test_every_simulated_message_parses_to_its_stable_sensor():
    devices = demo_devices(silent_after_s=None)
    assert len({d.format for d in devices}) >= 5
    now = dt.datetime.now(UTC)
    for device in devices:
        for t in (0.0, 30.0, HOUR):
            messages = device.messages(t, now)
            readings = [r for m in messages for r in formats.parse(m.topic, m.payload)]
            temps = [r for r in readings if r.temperature_c is not None]
            assert [r.sensor for r in temps] == [device.sensor_key]
            assert temps[0].temperature_c == pytest.approx(device.trace.temperature(t), abs=0.051)
        for message in (device.birth(), device.will()):
            (state,) = formats.parse(message.topic, message.payload)
            assert device.sensor_key.startswith(state.sensor)
    battery = [r.battery_pct for d in devices if isinstance(d, BrigadeDevice)
               for m in d.messages(0, now) for r in formats.parse(m.topic, m.payload)]
    assert battery == [96]


# --- the simulator against a real broker -----------------------------------------------------


def test_a_short_simulator_run_stores_sensors_from_several_formats(app, mosquitto_port):
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, protocol="3.1.1", flush_ms=50,
                                             client_id=f"brigade-sim-{time.time_ns()}"))
    worker.start()
    assert worker.connected.wait(10)
    time.sleep(0.2)
    simulator = Simulator(SimulatorSettings(port=mosquitto_port, speed=600, seconds=3,
                                            silent_after_s=10 * MINUTE))
    try:
        simulator.run()
        published = sum(simulator.published.values())
        assert published > 100
        # Every message lands (QoS 1, idempotent storage; none of them is a duplicate).
        assert wait_until(lambda: worker.stats["received"] >= published + 5, 30), worker.stats
        assert worker.stats["rejected"] == 0
    finally:
        worker.stop()
        cleanup = publisher(mosquitto_port, "test-cleanup")
        for topic in simulator.retained_topics():  # leave no retained births for later tests
            cleanup.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
        cleanup.disconnect()
        cleanup.loop_stop()
    with app.app_context():
        keys = dict(db.session.execute(
            select(Sensor.key, func.count(Reading.id)).join(Reading).group_by(Sensor.key)).all())
        prep_online = db.session.scalar(select(DeviceState.online).where(
            DeviceState.key == "tasmota/prep-fridge"))
    expected = {d.sensor_key for d in simulator.devices}
    assert set(keys) == expected  # one sensor per device, however many samples
    prefixes = {key.split("/")[0] for key in keys}
    assert len(prefixes) >= 4, prefixes
    assert keys["tasmota/prep-fridge/DS18B20/3C01D607B4B2"] <= 10 * MINUTE / 30 + 1  # then silent
    assert prep_online is False  # its Last Will


def test_the_simulator_command_runs_against_the_configured_broker(app, mosquitto_port):
    runner = app.test_cli_runner()
    app.config.update(BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=mosquitto_port)
    result = runner.invoke(args=["sensors", "simulate", "--seconds", "1", "--speed", "300",
                                 "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "zigbee2mqtt" in result.output and "published:" in result.output
    cleanup = publisher(mosquitto_port, "test-cleanup-cli")
    for topic in Simulator(SimulatorSettings()).retained_topics():
        cleanup.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    cleanup.disconnect()
    cleanup.loop_stop()


# --- flask serve's wiring ---------------------------------------------------------------------


def _threads():
    import threading
    return {t.name for t in threading.enumerate()}


def test_start_background_runs_broker_ingest_and_simulator_and_stops_them(app):
    app.config.update(BRIGADE_MQTT_HOST=None, BRIGADE_EMBEDDED_BROKER_PORT=free_port(),
                      BRIGADE_INGEST_FLUSH_MS=50, BRIGADE_MQTT_CLIENT_ID=f"brigade-bg-{time.time_ns()}")
    handle = start_background(app, simulate=True)
    try:
        assert handle.broker.running and handle.broker.port == app.config["BRIGADE_EMBEDDED_BROKER_PORT"]
        assert handle.ingestor.settings.protocol == "3.1.1"
        assert handle.ingestor.connected.is_set()
        assert {"brigade-mqtt-broker", "brigade-ingest-consumer", "brigade-simulator",
                "brigade-scheduler-lock"} <= _threads()
        # The first sample of every device is due within one interval (30 s at 1x); the first
        # few come at once.
        assert wait_until(lambda: count(app, Sensor) >= 1, 20)
    finally:
        handle.stop()
    assert not {"brigade-mqtt-broker", "brigade-ingest-consumer", "brigade-simulator",
                "brigade-scheduler-lock"} & _threads()
    assert handle.broker is None and handle.ingestor is None and handle.simulator is None
    assert handle.scheduler is None


def test_start_background_moves_off_a_taken_port(app, broker):
    app.config.update(BRIGADE_MQTT_HOST=None, BRIGADE_EMBEDDED_BROKER_PORT=broker.port)
    handle = start_background(app, ingest=False, simulate=False, scheduler=False)
    try:
        assert handle.broker.running and handle.broker.port != broker.port
        assert handle.ingestor is None and handle.simulator is None
    finally:
        handle.stop()


def test_start_background_with_a_real_broker_starts_only_ingest(app, mosquitto_port):
    app.config.update(BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=mosquitto_port,
                      BRIGADE_MQTT_CLIENT_ID=f"brigade-real-{time.time_ns()}")
    handle = start_background(app, simulate=False, scheduler=False)
    try:
        assert handle.broker is None
        assert handle.ingestor.settings.protocol == "5" and handle.ingestor.connected.is_set()
    finally:
        handle.stop()
    nothing = start_background(app, ingest=False, simulate=False, scheduler=False)
    assert (nothing.broker, nothing.ingestor, nothing.simulator, nothing.scheduler) == (None,) * 4
