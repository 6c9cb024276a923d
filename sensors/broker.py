"""The embedded MQTT broker: amqtt on 127.0.0.1, for the zero-config single-process run.

When no broker is configured (``BRIGADE_MQTT_HOST`` unset) Brigade runs its own: amqtt, a
maintained pure-Python asyncio broker, in a background thread with its own event loop. It
listens on the loopback interface only and lets any client in (only processes on this machine
can reach it). It keeps sessions and queued messages in memory, for the life of the process: a
real kitchen points ``BRIGADE_MQTT_HOST`` at Mosquitto (``deploy/mosquitto.conf``).

amqtt speaks MQTT 3.1.1 only, so ingest against it uses protocol "3.1.1"
(:func:`ingest_settings`).
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import socket
import threading
from dataclasses import dataclass

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"  # loopback only: the embedded broker has no passwords and no TLS
PROTOCOL = "3.1.1"  # all amqtt speaks
#: Loggers of the broker and the state machine it uses; chatty at INFO for every connection.
_QUIET_LOGGERS = ("amqtt", "transitions")


class BrokerError(RuntimeError):
    """The embedded broker could not start (usually: its port is taken)."""


class LoopbackAuthPlugin(BaseAuthPlugin):
    """Let every client in (the listener is loopback only), with or without a username.

    amqtt's own AnonymousAuthPlugin marks such clients anonymous, and amqtt then drops QoS 1
    messages for an anonymous persistent session while its client is away. Ingest's session
    (fixed client id, clean session off) must keep them, so nobody is marked anonymous here.
    """

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session) -> bool:
        return True


def broker_config(port: int) -> dict:
    """amqtt's configuration: one TCP listener on loopback, our auth plugin, nothing else."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        # Sessions that were disconnected for a day are dropped, so memory stays bounded.
        "session_expiry_interval": 86400,
        # No $SYS publisher, no packet logger: nothing but the listener and the auth check.
        "plugins": {f"{__name__}.LoopbackAuthPlugin": {}},
    }


def quiet_logging() -> None:
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:<port> (so the broker could bind it)."""
    with socket.socket() as probe:
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


class EmbeddedBroker:
    """An amqtt broker on 127.0.0.1:<port> in a thread with its own asyncio loop."""

    def __init__(self, port: int = 1883):
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Broker | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._ready.is_set() \
            and self._error is None

    def start(self, timeout: float = 10) -> None:
        """Start listening; return once the broker accepts connections, or raise BrokerError.

        amqtt's start() returns after its listening socket is bound and accepting, so the
        caller may connect as soon as this returns.
        """
        if self._thread is not None:
            raise BrokerError("the embedded broker is already started")
        if self.port and not port_is_free(self.port):
            raise BrokerError(self._in_use())  # before amqtt, which would log a traceback
        quiet_logging()
        self._thread = threading.Thread(target=self._run, name="brigade-mqtt-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise BrokerError(f"the embedded MQTT broker did not start within {timeout:g}s")
        if self._error is not None:
            self._thread.join(timeout)
            raise BrokerError(self._describe(self._error)) from self._error
        if self.port == 0:  # asked for any free port: report the one the listener got
            server = self._broker._servers["default"].instance  # noqa: SLF001 - amqtt has no API
            self.port = server.sockets[0].getsockname()[1]
        logger.info("embedded MQTT broker (amqtt, MQTT %s) listening on %s:%s", PROTOCOL, HOST,
                    self.port)

    def stop(self, timeout: float = 10) -> None:
        """Disconnect every client and close the listener; wait for the thread to end."""
        if self._thread is None:
            return
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stopping.set)
            except RuntimeError:
                pass  # the loop already ended
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("embedded MQTT broker did not stop within %ss", timeout)
        self._thread = None

    def _describe(self, error: BaseException) -> str:
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return self._in_use()
        return f"cannot start the embedded MQTT broker on {HOST}:{self.port}: {cause}"

    def _in_use(self) -> str:
        return (f"cannot start the embedded MQTT broker: {HOST}:{self.port} is already in use "
                "(another MQTT broker, e.g. Mosquitto?). Set BRIGADE_MQTT_HOST to use that "
                "broker, or BRIGADE_EMBEDDED_BROKER_PORT to another port.")

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported to start() in the calling thread
            self._error = exc
            if not self._ready.is_set():
                self._ready.set()
            else:
                logger.exception("embedded MQTT broker stopped on an error")
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._broker = Broker(broker_config(self.port))
        await self._broker.start()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self._broker.shutdown()

    def run_forever(self) -> None:
        """Run until SIGTERM/SIGINT (``flask sensors broker``)."""
        import signal
        done = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        try:
            while not done.wait(1):
                if not self.running:
                    raise BrokerError("the embedded MQTT broker stopped unexpectedly")
        finally:
            self.stop()


#: The file in the instance folder naming the port the app's embedded broker listens on, while
#: it runs, so that `flask sensors simulate` (another process) publishes to it by default.
PORT_FILE = "embedded-broker-port"


def choose_port(port: int, fallback: int) -> int:
    """The configured port, or the fallback when something else listens there; BrokerError when
    both are taken (naming both and what to set)."""
    if port_is_free(port):
        return port
    if fallback != port and port_is_free(fallback):
        return fallback
    raise BrokerError(f"cannot start the embedded MQTT broker: {HOST}:{port} and the fallback "
                      f"{HOST}:{fallback} are both in use. Set BRIGADE_MQTT_HOST to use the broker "
                      f"that is there, or BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT to a free port.")


def try_it_line(port: int) -> str:
    """A command to try the broker with: one reading for a sensor Brigade will then list."""
    return f"mosquitto_pub -h {HOST} -p {port} -q 1 -t brigade/try-me/temperature -m 4.2"


def ingest_settings(cfg, embedded_port: int | None = None):
    """MqttSettings for ingest: the configured broker, or the embedded one when none is set.

    Against the embedded broker the host is 127.0.0.1, the port BRIGADE_EMBEDDED_BROKER_PORT
    (or the port it actually got), the protocol 3.1.1 and no shared subscription (amqtt has
    neither MQTT 5 nor ``$share``).
    """
    from sensors.mqtt import MqttSettings
    settings = MqttSettings.from_config(cfg)
    if cfg["BRIGADE_MQTT_HOST"]:
        return settings
    return dataclasses.replace(
        settings, host=HOST, port=embedded_port or cfg["BRIGADE_EMBEDDED_BROKER_PORT"],
        protocol=PROTOCOL, shared_group=None, username=None, password=None, tls=False,
        ca_file=None)
