"""A newcomer's first start: the embedded broker's stable fallback port, the simulator finding
it, and the demo's logins printed once with where to use them."""
import json
import socket
from pathlib import Path

import pytest

from app.runner import start_background
from sensors.broker import PORT_FILE, BrokerError, choose_port, try_it_line
from tests.services import free_port


@pytest.fixture
def taken():
    """Something listening on a port, as a system Mosquitto on 1883 would be."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_a_taken_port_moves_the_broker_to_the_same_fallback_every_start(app, taken, caplog):
    fallback = free_port()
    app.config.update(BRIGADE_MQTT_HOST=None, BRIGADE_EMBEDDED_BROKER_PORT=taken,
                      BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT=fallback)
    port_file = Path(app.instance_path) / PORT_FILE
    for _start in range(2):
        caplog.clear()
        with caplog.at_level("INFO"):
            handle = start_background(app, ingest=False, simulate=False, scheduler=False)
        try:
            assert handle.broker.running and handle.broker.port == fallback
            assert port_file.read_text().strip() == str(fallback)
            logged = caplog.text
            assert f"127.0.0.1:{taken} is taken" in logged and f"fallback port {fallback}" in logged
            assert f"mosquitto_pub -h 127.0.0.1 -p {fallback} -q 1 -t brigade/try-me/temperature " \
                   "-m 4.2" in logged
        finally:
            handle.stop()
        assert not port_file.exists(), "a stopped broker's port is not left for the simulator"


def test_both_ports_taken_is_a_clear_refusal(taken):
    with pytest.raises(BrokerError, match=rf"{taken} and the fallback 127.0.0.1:{taken} are both "
                                          "in use.*BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT"):
        choose_port(taken, taken)
    free = free_port()
    assert choose_port(free, taken) == free
    assert try_it_line(18830).startswith("mosquitto_pub -h 127.0.0.1 -p 18830 ")


def test_the_fallback_port_is_configurable_and_checked(tmp_path):
    import config
    assert config.load(tmp_path, {})["BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT"] == 18830
    assert config.load(tmp_path, {"BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT": "1884"})[
        "BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT"] == 1884
    with pytest.raises(config.ConfigError, match="BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT"):
        config.load(tmp_path, {"BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT": "99999"})


def test_the_simulator_publishes_to_the_port_the_apps_broker_is_on(app, taken):
    fallback = free_port()
    app.config.update(BRIGADE_MQTT_HOST=None, BRIGADE_EMBEDDED_BROKER_PORT=taken,
                      BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT=fallback)
    handle = start_background(app, ingest=False, simulate=False, scheduler=False)
    try:
        result = app.test_cli_runner().invoke(args=["sensors", "simulate", "--seconds", "1",
                                                    "--speed", "300"])
        assert result.exit_code == 0, result.output
        assert f"on 127.0.0.1:{fallback} " in result.output and "published:" in result.output
    finally:
        handle.stop()
    # No broker of the app's running: the configured port, as before.
    result = app.test_cli_runner().invoke(args=["sensors", "simulate", "--help"])
    assert "the port the app's embedded broker is on" in " ".join(result.output.split())


def test_the_demo_logins_are_printed_once_per_start_with_where_to_use_them(app, runner, capsys):
    from app.cli import print_demo_credentials
    assert runner.invoke(args=["checklists", "load"]).exit_code == 0
    seeded = runner.invoke(args=["seed-demo"])
    creds = json.loads((Path(app.instance_path) / "demo-credentials.json").read_text())
    assert seeded.exit_code == 0 and "printed when Brigade starts" in seeded.output
    assert all(c["pin"] not in seeded.output for c in creds), "seeding prints no logins"
    with app.app_context():
        print_demo_credentials("http://127.0.0.1:8000")
    out = capsys.readouterr().out
    assert "Tablet (cooks: tap your name, then your PIN): http://127.0.0.1:8000/pin" in out
    assert "Head chef on a laptop (email and password):    http://127.0.0.1:8000/login" in out
    for c in creds:
        assert out.count(f"PIN {c['pin']}") == 1
        if c.get("password"):
            assert out.count(c["password"]) == 1
