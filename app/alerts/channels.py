"""Outbound alert channels: email (SMTP), a JSON webhook, an MQTT publish for buzzers and lights.

Each sender has the same signature, ``send(notification, config) -> None``, and raises
``ChannelError`` when the message was not delivered; the dispatcher
(:mod:`app.alerts.dispatch`) records the outcome and retries. A sender reads only the
notification's own columns (``id``, ``channel``, ``target``, ``level``, ``body``) and the
settings, never the database: it runs outside any transaction, handed a detached copy.

The tablet banner and the wall display are not senders: they show the open alerts
straight from the database, so they need no outbox row.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
#: Who hears at each escalation level (see ``operations.LEVEL_ROLES``), for the email text.
LEVEL_NAMES = {0: "on-duty cooks", 1: "head chef", 2: "owner"}
#: An error kept on the outbox row is cut to this length.
MAX_ERROR_CHARS = 300


class ChannelError(RuntimeError):
    """A notification was not delivered over its channel (worth retrying later)."""


def payload(notification) -> dict:
    """The JSON a webhook or MQTT subscriber receives: the message plus the notification id.

    The id lets a receiver drop the duplicate of a retry that did arrive the first time.
    """
    return {**(notification.body or {}), "notification_id": notification.id}


def short(error: BaseException | str) -> str:
    text = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


# --- email ------------------------------------------------------------------------------------

def _when(value) -> str | None:
    """An ISO timestamp from the alert detail as "2026-11-27 12:10 UTC"."""
    if not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _temp(value) -> str | None:
    return None if value is None else f"{value:.1f} °C"


def _detail_lines(kind: str, detail: dict) -> list[str]:
    """The values that matter for this kind of alert, one "Label: value" line each."""
    fields = {
        "temperature": [("Temperature now", _temp(detail.get("value_c"))),
                        ("Limit", _temp(detail.get("limit_c"))),
                        ("Target limit", _temp(detail.get("target_c"))),
                        ("Critical limit", _temp(detail.get("critical_c"))),
                        ("Peak", _temp(detail.get("peak_c"))),
                        ("Out of range since", _when(detail.get("excursion_started")))],
        "offline": [("Last reading", _when(detail.get("last_reading_at")) or "never")],
        "low_battery": [("Sensor", detail.get("sensor")),
                        ("Battery", None if detail.get("battery_pct") is None
                         else f"{detail['battery_pct']} %")],
        "checklist_overdue": [("Checklist", detail.get("checklist")),
                              ("Slot", (detail.get("slot_name") or {}).get("en")
                               or detail.get("schedule")),
                              ("Slot opened", _when(detail.get("slot_start"))),
                              ("Deadline", _when(detail.get("deadline")))],
        "timer_expired": [("Dish", detail.get("dish")), ("Hold", detail.get("timer_kind")),
                          ("Expired", _when(detail.get("expired_at")))],
        "calibration": [("Thermometer", detail.get("title")),
                        ("Off by", None if detail.get("error_c") is None
                         else f"{detail['error_c']:+.1f} °C"),
                        ("Tolerance", None if detail.get("tolerance_c") is None
                         else f"±{detail['tolerance_c']:g} °C")],
    }.get(kind, [])
    return [f"{label}: {value}" for label, value in fields if value is not None]


def email_text(body: dict) -> tuple[str, str]:
    """Subject and plain-text body of an outbox email: a message written whole, or an alert's."""
    if body.get("subject") and body.get("text"):
        return body["subject"], body["text"]
    detail = body.get("detail") or {}
    tier = str(body.get("tier") or "alarm").upper()
    title = detail.get("title") or body.get("kind") or "Alert"
    level = int(body.get("level") or 0)
    lines = [f"{tier}: {title}", ""]
    if detail.get("unit"):
        lines.append(f"Unit: {detail['unit']}")
    lines += _detail_lines(body.get("kind", ""), detail)
    lines += [f"Opened: {_when(body.get('opened_at'))}",
              f"Level: {tier.lower()}, escalation {level} ({LEVEL_NAMES.get(level, 'owner')}); "
              "not acknowledged yet",
              f"Alert: #{body.get('alert_id')} ({body.get('kind')})",
              "",
              "Acknowledge it on the Brigade tablet: say what you did and what happened to the food.",
              ""]
    return f"[Brigade] {tier}: {title}", "\n".join(lines)


def send_email(notification, config) -> None:
    """Send one alert email to ``notification.target`` through the configured SMTP server."""
    subject, text = email_text(notification.body or {})
    deliver_email(config, notification.target, subject, text,
                  {"X-Brigade-Notification": str(notification.id)})


def deliver_email(config, to: str, subject: str, text: str, headers: dict | None = None) -> None:
    """One plain-text email through the configured SMTP server; ChannelError on failure."""
    host, port = config.get("BRIGADE_SMTP_HOST"), config["BRIGADE_SMTP_PORT"]
    if not host:
        raise ChannelError("no SMTP server configured (BRIGADE_SMTP_HOST)")
    timeout = config["BRIGADE_SEND_TIMEOUT_SECONDS"]
    sender = config.get("BRIGADE_SMTP_FROM") or "brigade@localhost"
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = format_datetime(dt.datetime.now(UTC))
    message["Message-ID"] = make_msgid("brigade", domain=sender.rpartition("@")[2] or None)
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    try:
        # Port 465 is SMTP over TLS from the first byte; any other port may upgrade by STARTTLS.
        if port == 465:
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if port != 465 and config.get("BRIGADE_SMTP_STARTTLS"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("BRIGADE_SMTP_USERNAME"):
                smtp.login(config["BRIGADE_SMTP_USERNAME"], config.get("BRIGADE_SMTP_PASSWORD") or "")
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:  # timeouts and refusals are OSErrors
        raise ChannelError(short(exc)) from exc


# --- webhook ----------------------------------------------------------------------------------

class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirected POST would arrive as a GET, or somewhere else: count it as not delivered.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def send_webhook(notification, config) -> None:
    """POST the alert as JSON to ``notification.target``; anything but a 2xx is a failure."""
    request = urllib.request.Request(
        notification.target, data=json.dumps(payload(notification)).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "Brigade-alerts",
                 "X-Brigade-Notification": str(notification.id)})
    try:
        with _opener.open(request, timeout=config["BRIGADE_SEND_TIMEOUT_SECONDS"]) as response:
            status = response.status
            response.read(65536)
    except urllib.error.HTTPError as exc:  # 3xx (redirects refused), 4xx, 5xx
        raise ChannelError(short(f"HTTP {exc.code} {exc.reason}")) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # Not the URL itself in the error: a webhook URL often carries its secret.
        raise ChannelError(short(getattr(exc, "reason", None) or exc)) from exc
    if not 200 <= status < 300:
        raise ChannelError(f"HTTP {status}")


def target_for_log(channel: str, target: str) -> str:
    """The target fit for a log line: a webhook's scheme and host only (its path may be a secret)."""
    if channel == "webhook":
        parts = urlsplit(target)
        return f"{parts.scheme}://{parts.hostname}" if parts.hostname else "webhook"
    return target


# --- MQTT -------------------------------------------------------------------------------------

class MqttPublisher:
    """Publishes alerts at QoS 1 over one broker connection, kept open between sends.

    Connects on the first send (to the broker ingest uses, or the embedded one), under a
    client id of its own: sharing ingest's id would make the broker drop ingest's session.
    After any failure the connection is closed, so nothing it had queued is sent behind the
    dispatcher's back; the next send connects afresh.
    """

    def __init__(self):
        self._client = None
        self._key = None
        self._connected = threading.Event()
        self._refused = None

    def __call__(self, notification, config) -> None:
        self.send(notification, config)

    def send(self, notification, config) -> None:
        timeout = config["BRIGADE_SEND_TIMEOUT_SECONDS"]
        client = self._connection(config, timeout)
        try:
            # An anchored audit head is retained: the broker keeps the newest for any subscriber.
            retain = bool((notification.body or {}).get("retain"))
            info = client.publish(notification.target, json.dumps(payload(notification)), qos=1,
                                  retain=retain)
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:  # not connected, or the queue is full
            self.close()
            raise ChannelError(short(exc)) from exc
        if not info.is_published():
            self.close()
            raise ChannelError(f"the broker did not acknowledge the message within {timeout}s")

    def _connection(self, config, timeout: float):
        from sensors.broker import ingest_settings  # the broker ingest uses, or the embedded one
        settings = ingest_settings(config)
        key = (settings.host, settings.port, settings.username, settings.password, settings.tls,
               settings.ca_file, settings.protocol)
        if self._client is not None and self._key == key and self._connected.is_set():
            return self._client
        self.close()
        from sensors.mqtt_client import make_client
        client = make_client(settings, f"brigade-alerts-{uuid.uuid4().hex[:12]}")
        client.connect_timeout = timeout
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._connected.clear()
        self._refused = None
        try:
            client.connect(settings.host, settings.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise ChannelError(short(f"MQTT broker {settings.host}:{settings.port}: {exc}")) from exc
        client.loop_start()
        self._client, self._key = client, key
        if not self._connected.wait(timeout) or self._refused is not None:
            reason = self._refused or f"no CONNACK within {timeout}s"
            self.close()
            raise ChannelError(short(f"MQTT broker {settings.host}:{settings.port}: {reason}"))
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        if reason_code.is_failure:
            self._refused = str(reason_code)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self._connected.clear()

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.disconnect()
            finally:
                client.loop_stop()
        self._connected.clear()


def default_senders() -> dict:
    """One sender per channel name; the MQTT one holds a connection, so ``close_senders`` it."""
    return {"email": send_email, "webhook": send_webhook, "mqtt": MqttPublisher()}


def close_senders(senders: dict) -> None:
    for sender in senders.values():
        close = getattr(sender, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - closing a dead connection is not news
                logger.debug("closing %r failed", sender, exc_info=True)
