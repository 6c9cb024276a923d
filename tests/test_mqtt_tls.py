"""Ingest against a Mosquitto that wants TLS and a password, as a kitchen's real broker does."""
import datetime as dt
import getpass
import json
import shutil
import ssl
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.ingest import make_ingestor
from sensors.mqtt import MqttSettings
from tests.factories import unavailable
from tests.services import Mosquitto, ServiceUnavailable, wait_until
from tests.test_mqtt_ingest import stored


def self_signed(directory, name):
    """A certificate for 127.0.0.1 that is its own CA: (certfile, keyfile)."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """Mosquitto with a TLS listener and one account: (port, ca_file, other_ca_file)."""
    if not shutil.which("openssl") or not shutil.which("mosquitto_passwd"):
        unavailable("openssl and mosquitto_passwd are needed for the TLS broker")
    workdir = tmp_path_factory.mktemp("mosquitto-tls")
    cert, key = self_signed(workdir, "broker")
    stranger, _ = self_signed(workdir, "stranger")
    passwords = workdir / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "ingest", "s3cret-pass"],
                   check=True, capture_output=True)
    # Run as whoever runs the tests: started as root, Mosquitto would otherwise become the
    # `mosquitto` user, who cannot read pytest's private temporary directory.
    broker = Mosquitto(workdir, extra_conf=(
        f"user {getpass.getuser()}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous false\n"
        f"password_file {passwords}\n"))
    try:
        port = broker.start()
    except ServiceUnavailable as exc:
        unavailable(f"Mosquitto: {exc}")
    yield port, str(cert), str(stranger)
    broker.stop()


def tls_publisher(port, ca_file):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tls-pub-{time.time_ns()}")
    client.username_pw_set("ingest", "s3cret-pass")
    client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def worker(app, port, ca_file, password="s3cret-pass", protocol="5"):
    return make_ingestor(app, MqttSettings(port=port, username="ingest", password=password, tls=True,
                                           ca_file=ca_file, client_id=f"brigade-tls-{time.time_ns()}",
                                           protocol=protocol, flush_ms=50))


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_readings_arrive_over_tls_with_a_password(app, tls_broker, protocol):
    port, ca_file, _ = tls_broker
    ingest = worker(app, port, ca_file, protocol=protocol)
    ingest.start()
    pub = None
    try:
        assert ingest.connected.wait(30), "ingest did not connect over TLS"
        time.sleep(0.2)  # subscribed
        pub = tls_publisher(port, ca_file)
        t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=1)
        for i in range(500):  # enough to fill several TLS records and buffered reads
            pub.publish(f"brigade/tls-{i % 5}/reading",
                        json.dumps({"t": 3.0 + i % 10 / 10, "ts": (t0 + dt.timedelta(seconds=i)).isoformat()}),
                        qos=1)
        assert wait_until(lambda: stored(app) == 500, 60), stored(app)  # generous: a loaded CI box
        assert ingest.stats["received"] == 500
    finally:
        if pub is not None:
            pub.loop_stop()
        ingest.stop()


def test_a_wrong_password_or_an_untrusted_broker_never_connects(app, tls_broker, caplog):
    port, ca_file, stranger = tls_broker
    ingest = worker(app, port, ca_file, password="wrong")
    ingest.start()
    try:  # the broker answers, and says no
        assert wait_until(lambda: f"MQTT connection to 127.0.0.1:{port} refused" in caplog.text, 60)
        assert "check BRIGADE_MQTT_USERNAME / BRIGADE_MQTT_PASSWORD" in caplog.text  # the hint
        assert not ingest.connected.is_set()
    finally:
        ingest.stop()
    ingest = worker(app, port, stranger)
    ingest.start()
    try:  # the TLS handshake fails: the broker's certificate is not the one we trust
        assert not ingest.connected.wait(3)
    finally:
        ingest.stop()
