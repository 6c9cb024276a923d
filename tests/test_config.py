"""Settings are parsed strictly; a bad value names its variable."""
import pytest

import config


@pytest.mark.parametrize("raw,expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                          ("0", False), ("false", False), ("No", False),
                                          ("off", False)])
def test_booleans(raw, expected):
    assert config.env_bool("X", not expected, {"X": raw}) is expected


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y e s"])
def test_bad_boolean_names_the_variable(raw):
    with pytest.raises(config.ConfigError, match="BRIGADE_SECURE_COOKIES"):
        config.load("/tmp/none", {"BRIGADE_SECURE_COOKIES": raw})


@pytest.mark.parametrize("raw,message", [("abc", "not a whole number"), ("5", "below the minimum"),
                                         ("12.5", "not a whole number")])
def test_bad_numbers(raw, message):
    with pytest.raises(config.ConfigError, match=f"BRIGADE_TABLET_IDLE_SECONDS.*{message}"):
        config.load("/tmp/none", {"BRIGADE_TABLET_IDLE_SECONDS": raw})


def test_bad_timezone_and_env():
    with pytest.raises(config.ConfigError, match="BRIGADE_DEFAULT_TIMEZONE"):
        config.load("/tmp/none", {"BRIGADE_DEFAULT_TIMEZONE": "Mars/Olympus"})
    with pytest.raises(config.ConfigError, match="BRIGADE_ENV"):
        config.load("/tmp/none", {"BRIGADE_ENV": "prod"})


def test_defaults_and_overrides(tmp_path):
    settings = config.load(tmp_path, {"BRIGADE_TABLET_IDLE_SECONDS": "90",
                                      "BRIGADE_DATABASE_URL": "postgresql+psycopg://x/y"})
    assert settings["BRIGADE_TABLET_IDLE_SECONDS"] == 90
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://x/y"
    assert settings["BRIGADE_PIN_MAX_TRIES"] == 5
    assert config.load(tmp_path, {})["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'brigade.db'}"


def test_no_default_secret(tmp_path, monkeypatch):
    """Without a secret in the environment or the instance folder the app refuses to start."""
    from app import create_app
    monkeypatch.setenv("BRIGADE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("BRIGADE_SECRET_KEY", raising=False)
    monkeypatch.delenv("BRIGADE_AUDIT_KEY", raising=False)
    with pytest.raises(config.ConfigError, match="No secret key"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"})


def test_no_secret_names_the_command_that_makes_them(tmp_path, monkeypatch):
    import subprocess
    import sys

    from app import create_app
    monkeypatch.setenv("BRIGADE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("BRIGADE_SECRET_KEY", raising=False)
    monkeypatch.delenv("BRIGADE_AUDIT_KEY", raising=False)
    with pytest.raises(config.ConfigError) as refused:
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"})
    command = refused.value.args[0].split("`")[1]
    assert command == "python -m app.instance init-secrets"
    made = subprocess.run([sys.executable, *command.split()[1:]], capture_output=True, text=True,
                          env={**__import__("os").environ, "BRIGADE_INSTANCE_PATH": str(tmp_path)})
    assert made.returncode == 0 and (tmp_path / "audit_key").exists(), made.stderr


def test_the_database_and_its_wal_files_are_the_owners_only(tmp_path, monkeypatch):
    """They hold PIN hashes and every record: 0600 in a 0700 folder, not world-readable."""
    import os
    from sqlalchemy import text

    from app import create_app
    from app.models import db
    instance = tmp_path / "instance"
    monkeypatch.setenv("BRIGADE_INSTANCE_PATH", str(instance))
    old = os.umask(0o022)
    try:
        app = create_app({"SECRET_KEY": "x", "BRIGADE_AUDIT_KEY": "y",
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance}/brigade.db"})
        with app.app_context():
            db.session.execute(text("PRAGMA journal_mode=WAL"))
            db.session.execute(text("CREATE TABLE t (x INTEGER)"))
            db.session.execute(text("INSERT INTO t VALUES (1)"))
            db.session.commit()
            files = {p.name: p.stat().st_mode & 0o777 for p in instance.iterdir()}
            db.engine.dispose()
    finally:
        os.umask(old)
    assert instance.stat().st_mode & 0o777 == 0o700
    assert {"brigade.db", "brigade.db-wal", "brigade.db-shm"} <= set(files), files
    assert all(mode == 0o600 for name, mode in files.items() if name.startswith("brigade.db")), files


def test_instance_secrets_are_generated_once(tmp_path):
    first = config.instance_secret(tmp_path, "secret_key", create=True)
    assert len(first) == 64
    assert config.instance_secret(tmp_path, "secret_key", create=True) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("topic", ["brigade/alerts", "brigade", "zigbee2mqtt/alerts", "shellies"])
def test_an_alert_topic_ingest_would_eat_is_refused(topic):
    """Ingest subscribes to brigade/#, zigbee2mqtt/# …: alerts published there became dead letters."""
    with pytest.raises(config.ConfigError, match="BRIGADE_ALERT_MQTT_TOPIC.*inside what ingest"):
        config.load("/tmp/none", {"BRIGADE_ALERT_MQTT_TOPIC": topic})


def test_an_alert_topic_outside_ingests_subscriptions_is_taken():
    assert config.load("/tmp/none", {"BRIGADE_ALERT_MQTT_TOPIC": "kitchen/alerts"})[
        "BRIGADE_ALERT_MQTT_TOPIC"] == "kitchen/alerts"


def test_a_shared_subscription_on_mqtt_3_1_1_is_refused():
    """NATS and RabbitMQ take $share/g/brigade/# literally on 3.1.1: nothing would be stored."""
    with pytest.raises(config.ConfigError, match="SHARED_GROUP needs BRIGADE_MQTT_PROTOCOL=5"):
        config.load("/tmp/none", {"BRIGADE_MQTT_SHARED_GROUP": "g", "BRIGADE_MQTT_PROTOCOL": "3.1.1"})
    assert config.load("/tmp/none", {"BRIGADE_MQTT_SHARED_GROUP": "g"})["BRIGADE_MQTT_SHARED_GROUP"] == "g"


def test_a_refused_connection_is_logged_with_what_to_change():
    from sensors.mqtt import refusal_hint
    assert "BRIGADE_MQTT_PROTOCOL=3.1.1" in refusal_hint("Unsupported protocol version")
    assert "BRIGADE_MQTT_USERNAME" in refusal_hint("Bad user name or password")
    assert "BRIGADE_MQTT_USERNAME" in refusal_hint("Not authorized")
    assert refusal_hint("Server unavailable") == ""
