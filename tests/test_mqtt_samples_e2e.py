"""Every vendor sample payload, published to a real Mosquitto, lands as its parse says.

tests/formats/test_samples.py pins what each sample parses to; this drives the same samples
through the broker and ingest into the database: temperatures as readings (in °C, with the
time source the device's clock deserves), batteries and availability on the device's state.
"""
import datetime as dt
import time

import pytest
from sqlalchemy import func, select

from app.models import db
from sensors.models import DeadLetter, DeviceState, Reading, Sensor
from app.ingest import make_ingestor
from sensors.mqtt import MqttSettings
from sensors.store import MAX_DEVICE_AGE
from tests.factories import make_app
from tests.formats.test_samples import CASES, sample
from tests.services import wait_until
from tests.test_mqtt_ingest import publisher


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, mosquitto_port):
    """One SQLite database, one ingest worker and one publisher for all the samples."""
    workdir = tmp_path_factory.mktemp("samples-e2e")
    app = make_app(f"sqlite:///{workdir / 'brigade.db'}", workdir / "instance")
    with app.app_context():
        db.create_all()
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, flush_ms=20,
                                             client_id=f"brigade-samples-{time.time_ns()}"))
    worker.start()
    assert worker.connected.wait(10)
    time.sleep(0.3)  # subscribed
    pub = publisher(mosquitto_port)
    yield app, worker, pub
    pub.loop_stop()
    worker.stop()
    with app.app_context():
        db.engine.dispose()


def _empty(app) -> None:
    with app.app_context(), db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.mark.parametrize("topic,name,expected", CASES, ids=[case[1] for case in CASES])
def test_every_sample_lands_through_the_broker(pipeline, topic, name, expected):
    app, worker, pub = pipeline
    _empty(app)
    before = worker.stats["received"]
    pub.publish(topic, sample(name), qos=1).wait_for_publish(5)
    assert wait_until(lambda: worker.stats["received"] == before + 1, 10), worker.stats
    now = dt.datetime.now(dt.timezone.utc)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DeadLetter)) == 0
        rows = db.session.execute(select(Sensor.key, Reading.temperature_c, Reading.time_source)
                                  .join(Reading)).all()
        states = {s.key: s for s in db.session.execute(select(DeviceState)).scalars()}
        temperatures = [r for r in expected if r.temperature_c is not None]
        assert len(rows) == len(temperatures), rows
        for reading in temperatures:
            [(celsius, source)] = [(t, src) for key, t, src in rows if key == reading.sensor]
            assert celsius == pytest.approx(reading.temperature_c, abs=0.01)
            sane = reading.measured_at is not None and \
                now - MAX_DEVICE_AGE <= reading.measured_at <= now + dt.timedelta(minutes=2)
            assert source == ("device" if sane else "received")
        for reading in expected:
            if reading.battery_pct is not None:
                assert states[reading.sensor].battery_pct == reading.battery_pct
            if reading.online is not None:
                assert states[reading.sensor].online is reading.online
