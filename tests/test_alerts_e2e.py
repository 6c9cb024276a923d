"""End to end: a failing fridge over a real Mosquitto, through ingest, to email, webhook and MQTT."""
import datetime as dt
import json
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from app.alerts.dispatch import dispatch_due
from app.alerts.engine import sweep_units, unit_state
from app.alerts.operations import acknowledge, notify_due, resolve
from app.errors import OperationError
from app.models import Alert, Notification, Site, Staff, db, utcnow
from app.ingest import make_ingestor
from sensors.mqtt import MqttSettings
from app.models.units import Unit
from sensors.models import Sensor
from sensors.simulator import Failure, fridge
from tests.services import wait_until
from tests.test_channels import alert_topic, configure, mqtt_inbox, smtp_inbox, webhook  # noqa: F401

UTC = dt.timezone.utc


def test_a_failing_fridge_alerts_once_notifies_every_channel_and_escalates(
        app, kitchen, mosquitto_port, smtp_inbox, webhook, mqtt_inbox, alert_topic):
    hook = webhook()
    configure(app, BRIGADE_SMTP_HOST="127.0.0.1", BRIGADE_SMTP_PORT=smtp_inbox.port,
              BRIGADE_ALERT_WEBHOOK_URL=hook.url, BRIGADE_ALERT_MQTT_TOPIC=alert_topic,
              BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=mosquitto_port)
    with app.app_context():
        unit = Unit(site_id=kitchen["site"], name="Cold-dish fridge", kind="fridge",
                    target_max_c=5.0, critical_max_c=8.0, alert_delay_s=900, critical_delay_s=300,
                    # The last hour arrives at once with its own timestamps; evaluated after an
                    # early batch, a 30 s interval would (rightly) call the unit silent.
                    expected_interval_s=3600)
        db.session.add(unit)
        db.session.flush()
        db.session.add(Sensor(key="z2m/cold-dish-fridge", unit_id=unit.id))
        db.session.commit()
        unit_id = unit.id
    worker = make_ingestor(app, MqttSettings(port=mosquitto_port, client_id=f"e2e-{time.time_ns()}",
                                             flush_ms=50))
    worker.start()
    assert worker.connected.wait(10)
    time.sleep(0.3)
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"e2e-pub-{time.time_ns()}")
    publisher.connect("127.0.0.1", mosquitto_port)
    publisher.loop_start()
    try:
        # The simulator's failing compressor: an hour of a fridge whose compressor dies 10
        # minutes in, published as Zigbee2MQTT with the devices' own timestamps (last_seen).
        trace = fridge("cold-dish-fridge", 1, 3.0, 0, failure=Failure(at_s=600))
        start = utcnow() - dt.timedelta(hours=1)
        values = [trace.temperature(t) for t in range(0, 3600, 30)]
        assert values[0] < 5 and values[-1] > 8, "the trace climbs past both limits"
        for n, value in enumerate(values):
            at = start + dt.timedelta(seconds=30 * n)
            payload = {"temperature": round(value, 2), "battery": 80, "linkquality": 100,
                       "last_seen": at.isoformat()}
            publisher.publish("zigbee2mqtt/cold-dish-fridge", json.dumps(payload), qos=1)
        assert wait_until(lambda: worker.stats["stored"] >= len(values), 30)
        with app.app_context():
            assert wait_until(lambda: db.session.execute(select(Alert)).scalars().all() != [], 10)
            sweep_units(db.session)
            sweep_units(db.session)
            db.session.commit()
            [alert] = db.session.execute(select(Alert)).scalars().all()  # exactly one
            assert (alert.kind, alert.state.tier, alert.unit_id) == ("temperature", "critical", unit_id)

            # Nobody acknowledges: the cooks' level, then the head chef's ten minutes later.
            notify_due(db.session, alert.opened_at)
            notify_due(db.session, alert.opened_at + dt.timedelta(minutes=10))
            db.session.commit()
            assert alert.state.escalation_level == 1
            counts = dispatch_due(db.session, alert.opened_at + dt.timedelta(minutes=10))
            db.session.commit()
            assert counts["sent"] == 5 and counts.get("failed", 0) == 0  # 2 rounds: 2 + 3 sends
            channels = {n.channel for n in db.session.execute(select(Notification)).scalars()
                        if n.status == "sent"}
            assert channels == {"email", "webhook", "mqtt"}

            site = db.session.get(Site, kitchen["site"])
            chef = db.session.get(Staff, kitchen["chef"])
            acknowledge(db.session, alert, chef, None, corrective_action="Moved dishes to the walk-in",
                        food_outcome="moved")
            db.session.commit()
            still = unit_state(db.session, db.session.get(Unit, unit_id), site, utcnow())
            with pytest.raises(OperationError, match="still out of range"):
                resolve(db.session, alert, chef, None, still_out=bool(still.excursions))
        assert [rcpt for rcpt, _ in smtp_inbox.messages] == [["chef@test.kitchen"]]
        assert "Cold-dish fridge" in smtp_inbox.messages[0][1]["Subject"] or \
            "Cold-dish fridge" in smtp_inbox.messages[0][1].get_content()
        assert [body["alert_id"] for _, _, body in hook.posts] == [alert.id, alert.id]
        topic, qos, body = mqtt_inbox.get(timeout=5)
        assert topic == f"{alert_topic}/{kitchen['site']}" and qos == 1 and body["tier"] == "critical"
    finally:
        publisher.loop_stop()
        worker.stop()
