"""Brigade's settings, read from the environment and parsed strictly.

Every setting is an environment variable named ``BRIGADE_<NAME>``. A value that
does not parse stops start-up with a message naming the variable: a kitchen
should find out about a typo in ``BRIGADE_TABLET_IDLE_SECONDS`` at start, not
when a tablet never locks.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(click.ClickException, RuntimeError):
    """A setting in the environment has a value Brigade cannot use.

    A ClickException, so a ``flask …`` command says ``Error: <what is wrong>`` and exits 1
    instead of printing a traceback.
    """

    def __str__(self) -> str:
        return self.message


def env_str(name: str, default: str | None = None, environ=os.environ) -> str | None:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def env_bool(name: str, default: bool, environ=os.environ) -> bool:
    value = env_str(name, None, environ)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use one of: true, false, 1, 0, yes, no, on, off)")


def env_int(name: str, default: int, environ=os.environ, *, minimum: int | None = None,
            maximum: int | None = None) -> int:
    value = env_str(name, None, environ)
    if value is None:
        return default
    try:
        number = int(value, 10)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} is below the minimum of {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name}={number} is above the maximum of {maximum}")
    return number


def env_int_list(name: str, default: list[int], environ=os.environ) -> list[int]:
    value = env_str(name, None, environ)
    if value is None:
        return list(default)
    try:
        numbers = [int(part, 10) for part in value.split(",")]
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a comma-separated list of whole numbers") from None
    if numbers != sorted(numbers) or any(n < 0 for n in numbers):
        raise ConfigError(f"{name}={value!r} must be non-negative and increasing")
    return numbers


def env_choice(name: str, default: str, choices: tuple[str, ...], environ=os.environ) -> str:
    value = env_str(name, default, environ)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def env_timezone(name: str, default: str, environ=os.environ) -> str:
    value = env_str(name, default, environ)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name}={value!r} is not an IANA time zone (e.g. Europe/London)") from None
    return value


def instance_secret(instance_path: Path, filename: str, *, create: bool) -> str | None:
    """Read a secret kept in the instance folder, generating it when asked to."""
    path = Path(instance_path) / filename
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32)
    # Written with owner-only permissions: it signs sessions and keys the audit chain.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


def secret_file(path: str | None, name: str) -> str | None:
    """A secret read from a file named by ``name`` (e.g. a mounted secret); refused if missing."""
    if not path:
        return None
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}={path!r} cannot be read: {exc.strerror}") from None
    if not value:
        raise ConfigError(f"{name}={path!r} is empty")
    return value


def load(instance_path: str | Path, environ=os.environ) -> dict:
    """Return Flask settings from the environment; raise ConfigError on a bad value."""
    instance_path = Path(instance_path)
    env = env_choice("BRIGADE_ENV", "production", ("production", "development", "testing"), environ)
    database_url = env_str("BRIGADE_DATABASE_URL", None, environ) or \
        f"sqlite:///{instance_path / 'brigade.db'}"
    settings = {
        "BRIGADE_ENV": env,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": env_str("BRIGADE_SECRET_KEY", None, environ)
        or instance_secret(instance_path, "secret_key", create=False),
        # The audit key is best kept away from the database it vouches for: the environment,
        # or a file on another mount / a secrets manager's file (BRIGADE_AUDIT_KEY_FILE).
        "BRIGADE_AUDIT_KEY": env_str("BRIGADE_AUDIT_KEY", None, environ)
        or secret_file(env_str("BRIGADE_AUDIT_KEY_FILE", None, environ), "BRIGADE_AUDIT_KEY_FILE")
        or instance_secret(instance_path, "audit_key", create=False),
        # Keys the chain was hashed with before the last `flask audit rotate-key`, comma-separated:
        # verify checks the links of each key's era with it.
        "BRIGADE_AUDIT_PREVIOUS_KEYS": [k for k in (env_str("BRIGADE_AUDIT_PREVIOUS_KEYS", "",
                                                            environ) or "").split(",") if k],
        # Where the chain's head is anchored (appended, 0600); verify reads it by itself.
        "BRIGADE_AUDIT_ANCHOR_FILE": env_str("BRIGADE_AUDIT_ANCHOR_FILE", None, environ)
        or str(instance_path / "audit-anchors"),
        "BRIGADE_AUDIT_ANCHOR_SECONDS": env_int("BRIGADE_AUDIT_ANCHOR_SECONDS", 3600, environ,
                                                minimum=60, maximum=86400),
        "BRIGADE_TABLET_IDLE_SECONDS": env_int("BRIGADE_TABLET_IDLE_SECONDS", 120, environ,
                                               minimum=10, maximum=86400),
        "BRIGADE_PIN_MAX_TRIES": env_int("BRIGADE_PIN_MAX_TRIES", 5, environ, minimum=1, maximum=100),
        "BRIGADE_PIN_LOCK_SECONDS": env_int("BRIGADE_PIN_LOCK_SECONDS", 60, environ, minimum=1,
                                            maximum=86400),
        # Wrong guesses from browsers a person has not signed in on, across everyone, per window.
        "BRIGADE_SITE_GUESSES": env_int("BRIGADE_SITE_GUESSES", 20, environ, minimum=1,
                                        maximum=10000),
        "BRIGADE_DEVICE_GUESSES": env_int("BRIGADE_DEVICE_GUESSES", 10, environ, minimum=1,
                                          maximum=10000),
        "BRIGADE_GUESS_WINDOW_SECONDS": env_int("BRIGADE_GUESS_WINDOW_SECONDS", 600, environ,
                                                minimum=1, maximum=86400),
        "BRIGADE_PHOTO_MAX_BYTES": env_int("BRIGADE_PHOTO_MAX_BYTES", 8 * 1024 * 1024, environ,
                                           minimum=1024),
        "BRIGADE_DEFAULT_TIMEZONE": env_timezone("BRIGADE_DEFAULT_TIMEZONE", "Europe/London", environ),
        "BRIGADE_HOST": env_str("BRIGADE_HOST", "127.0.0.1", environ),
        "BRIGADE_PORT": env_int("BRIGADE_PORT", 8000, environ, minimum=1, maximum=65535),
        "BRIGADE_THREADS": env_int("BRIGADE_THREADS", 16, environ, minimum=1, maximum=256),
        # The live socket (app.live.socket): `flask serve` runs it on this port (0: none, and
        # pages ask over HTTP only); `flask live` runs it apart. Behind a TLS proxy, the wss://
        # address the proxy forwards to it, which pages then open.
        "BRIGADE_LIVE_PORT": env_int("BRIGADE_LIVE_PORT", 8001, environ, minimum=0, maximum=65535),
        "BRIGADE_LIVE_SOCKET_URL": env_str("BRIGADE_LIVE_SOCKET_URL", None, environ),
        "SESSION_COOKIE_SECURE": env_bool("BRIGADE_SECURE_COOKIES", False, environ),
        "SESSION_COOKIE_HTTPONLY": True,
        # Reverse proxies in front of Brigade whose X-Forwarded-For/-Proto/-Host are believed
        # (0: none, so a client cannot claim HTTPS or another address by sending the header).
        "BRIGADE_TRUSTED_PROXIES": env_int("BRIGADE_TRUSTED_PROXIES", 0, environ, minimum=0,
                                           maximum=5),
        # A CSRF token lives as long as the session it is tied to: a tablet page kept alive by
        # HTMX for hours must still be able to post (Flask-WTF's default is one hour).
        "WTF_CSRF_TIME_LIMIT": None,
        "BRIGADE_SESSION_HOURS": env_int("BRIGADE_SESSION_HOURS", 12, environ, minimum=1,
                                         maximum=24 * 31),
        "SESSION_COOKIE_SAMESITE": "Lax",
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "MAX_CONTENT_LENGTH": env_int("BRIGADE_PHOTO_MAX_BYTES", 8 * 1024 * 1024, environ,
                                      minimum=1024) + 64 * 1024,
        # MQTT: no host means the embedded broker on 127.0.0.1 (zero-config default).
        "BRIGADE_MQTT_HOST": env_str("BRIGADE_MQTT_HOST", None, environ),
        "BRIGADE_MQTT_PORT": env_int("BRIGADE_MQTT_PORT", 1883, environ, minimum=1, maximum=65535),
        # The embedded broker's port on 127.0.0.1, used only while BRIGADE_MQTT_HOST is unset.
        "BRIGADE_EMBEDDED_BROKER_PORT": env_int("BRIGADE_EMBEDDED_BROKER_PORT", 1883, environ,
                                                minimum=1, maximum=65535),
        # Where the embedded broker goes when that port is taken (a system Mosquitto on 1883):
        # the same port at every start, so devices and `flask sensors simulate` can rely on it.
        "BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT": env_int("BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT",
                                                         18830, environ, minimum=1, maximum=65535),
        "BRIGADE_MQTT_USERNAME": env_str("BRIGADE_MQTT_USERNAME", None, environ),
        "BRIGADE_MQTT_PASSWORD": env_str("BRIGADE_MQTT_PASSWORD", None, environ),
        "BRIGADE_MQTT_TLS": env_bool("BRIGADE_MQTT_TLS", False, environ),
        "BRIGADE_MQTT_CA_FILE": env_str("BRIGADE_MQTT_CA_FILE", None, environ),
        "BRIGADE_MQTT_CLIENT_ID": env_str("BRIGADE_MQTT_CLIENT_ID", "brigade-ingest", environ),
        "BRIGADE_MQTT_PROTOCOL": env_choice("BRIGADE_MQTT_PROTOCOL", "5", ("5", "3.1.1"), environ),
        "BRIGADE_MQTT_SHARED_GROUP": env_str("BRIGADE_MQTT_SHARED_GROUP", None, environ),
        "BRIGADE_MQTT_CLIENT": env_choice("BRIGADE_MQTT_CLIENT", "batching", ("batching", "stock"),
                                          environ),
        "BRIGADE_MQTT_SESSION_EXPIRY": env_int("BRIGADE_MQTT_SESSION_EXPIRY", 7 * 86400, environ,
                                               minimum=60),
        "BRIGADE_INGEST_BATCH_SIZE": env_int("BRIGADE_INGEST_BATCH_SIZE", 1000, environ,
                                             minimum=1, maximum=20000),
        "BRIGADE_INGEST_FLUSH_MS": env_int("BRIGADE_INGEST_FLUSH_MS", 200, environ, minimum=1,
                                           maximum=10000),
        "BRIGADE_INGEST_QUEUE_MB": env_int("BRIGADE_INGEST_QUEUE_MB", 64, environ, minimum=1,
                                           maximum=4096),
        "BRIGADE_SIMULATE": env_bool("BRIGADE_SIMULATE", False, environ),
        # Alerts: minutes after opening at which an unacknowledged alert reaches each level
        # (on-duty cooks, head chef, owner), and how often it is repeated until acknowledged.
        "BRIGADE_ESCALATION_MINUTES": env_int_list("BRIGADE_ESCALATION_MINUTES", [0, 10, 30], environ),
        "BRIGADE_RENOTIFY_MINUTES": env_int("BRIGADE_RENOTIFY_MINUTES", 5, environ, minimum=1),
        "BRIGADE_LOW_BATTERY_PCT": env_int("BRIGADE_LOW_BATTERY_PCT", 20, environ, minimum=1,
                                           maximum=99),
        "BRIGADE_SMTP_HOST": env_str("BRIGADE_SMTP_HOST", None, environ),
        "BRIGADE_SMTP_PORT": env_int("BRIGADE_SMTP_PORT", 587, environ, minimum=1, maximum=65535),
        "BRIGADE_SMTP_USERNAME": env_str("BRIGADE_SMTP_USERNAME", None, environ),
        "BRIGADE_SMTP_PASSWORD": env_str("BRIGADE_SMTP_PASSWORD", None, environ),
        "BRIGADE_SMTP_STARTTLS": env_bool("BRIGADE_SMTP_STARTTLS", True, environ),
        "BRIGADE_SMTP_FROM": env_str("BRIGADE_SMTP_FROM", "brigade@localhost", environ),
        "BRIGADE_ALERT_WEBHOOK_URL": env_str("BRIGADE_ALERT_WEBHOOK_URL", None, environ),
        "BRIGADE_ALERT_MQTT_TOPIC": env_str("BRIGADE_ALERT_MQTT_TOPIC", None, environ),
        # Each anchored head is also published here, retained (so the broker keeps the newest).
        "BRIGADE_AUDIT_ANCHOR_TOPIC": env_str("BRIGADE_AUDIT_ANCHOR_TOPIC", None, environ),
        "BRIGADE_RETENTION_DAYS": env_int("BRIGADE_RETENTION_DAYS", 730, environ, minimum=1),
        "BRIGADE_CALIBRATION_DAYS": env_int("BRIGADE_CALIBRATION_DAYS", 30, environ, minimum=1,
                                            maximum=366),
        "BRIGADE_SEND_TIMEOUT_SECONDS": env_int("BRIGADE_SEND_TIMEOUT_SECONDS", 10, environ,
                                                minimum=1, maximum=120),
    }
    if settings["BRIGADE_MQTT_TLS"] and settings["BRIGADE_MQTT_CA_FILE"] and \
            not Path(settings["BRIGADE_MQTT_CA_FILE"]).is_file():
        raise ConfigError(f"BRIGADE_MQTT_CA_FILE={settings['BRIGADE_MQTT_CA_FILE']!r} is not a file")
    _check_mqtt(settings)
    return settings


def _check_mqtt(settings: dict) -> None:
    """Refuse MQTT settings that would silently store nothing or eat Brigade's own messages."""
    from paho.mqtt.client import topic_matches_sub

    from sensors.formats import SUBSCRIPTIONS
    if settings["BRIGADE_MQTT_SHARED_GROUP"] and settings["BRIGADE_MQTT_PROTOCOL"] != "5":
        raise ConfigError("BRIGADE_MQTT_SHARED_GROUP needs BRIGADE_MQTT_PROTOCOL=5: on MQTT 3.1.1 "
                          "a broker takes $share/... for a plain topic and ingest stores nothing")
    anchor_topic = settings.get("BRIGADE_AUDIT_ANCHOR_TOPIC")
    if anchor_topic and [sub for sub in SUBSCRIPTIONS if topic_matches_sub(sub, anchor_topic)]:
        raise ConfigError(f"BRIGADE_AUDIT_ANCHOR_TOPIC={anchor_topic!r} is inside what ingest "
                          "subscribes to: choose a topic outside it, e.g. kitchen/audit-anchor")
    topic = settings["BRIGADE_ALERT_MQTT_TOPIC"]
    if topic:
        published = f"{topic.rstrip('/')}/1"  # what the alert channel publishes: <topic>/<site>
        eaten = [sub for sub in SUBSCRIPTIONS if topic_matches_sub(sub, published)]
        if eaten:
            raise ConfigError(f"BRIGADE_ALERT_MQTT_TOPIC={topic!r} is inside what ingest subscribes "
                              f"to ({', '.join(eaten)}): every alert would come back as a rejected "
                              "reading. Choose a topic outside those, e.g. kitchen/alerts")
