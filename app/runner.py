"""The single-process default: the embedded broker, ingest and the simulator beside the web server.

``flask serve`` calls :func:`start_background` before waitress and ``stop()`` after it. Nothing
here runs at import or in ``create_app``: a deployment that runs ``flask sensors ingest`` (and a
real broker) separately passes ``--no-ingest`` / ``--no-broker``, and its web processes start no
background work at all.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

logger = logging.getLogger(__name__)


@dataclass
class Background:
    """What :func:`start_background` started; ``stop()`` ends it in reverse order."""

    broker: object | None = None  # sensors.broker.EmbeddedBroker
    ingestor: object | None = None  # sensors.mqtt.Ingestor
    simulator: object | None = None  # sensors.simulator.Simulator
    scheduler: object | None = None  # app.scheduler.Scheduler

    def stop(self) -> None:
        # Devices first, then ingest (stores and acknowledges what it holds), the broker last.
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        if self.ingestor is not None:
            self.ingestor.stop()
            self.ingestor = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None


def start_background(app: Flask, *, broker: bool = True, ingest: bool = True,
                     simulate: bool | None = None, scheduler: bool = True) -> Background:
    """Start what a single-process Brigade runs beside the web server; return a handle to stop it.

    - no ``BRIGADE_MQTT_HOST``: the embedded broker on 127.0.0.1 (unless ``broker`` is False:
      then ``flask sensors broker`` is expected to run it);
    - an :class:`~sensors.mqtt.Ingestor` on that broker, or on the configured one;
    - the simulator when ``simulate`` (default ``BRIGADE_SIMULATE``);
    - the scheduler (it acts only while it holds the deployment's lock, so a second
      process running one is harmless).
    """
    from sensors.broker import EmbeddedBroker, ingest_settings, port_is_free
    cfg = app.config
    simulate = cfg["BRIGADE_SIMULATE"] if simulate is None else simulate
    handle = Background()
    try:
        embedded_port = None
        if broker and not cfg["BRIGADE_MQTT_HOST"]:
            port = cfg["BRIGADE_EMBEDDED_BROKER_PORT"]
            if not port_is_free(port):
                # Typically a system Mosquitto on 1883. Everything that talks to this broker
                # runs in this process, so any free port serves the zero-config run.
                logger.warning("127.0.0.1:%s is taken (another MQTT broker?); the embedded broker "
                               "uses a free port instead. Devices must then use that port, or set "
                               "BRIGADE_MQTT_HOST to use the broker on %s.", port, port)
                port = 0
            handle.broker = EmbeddedBroker(port)
            handle.broker.start()
            embedded_port = handle.broker.port
        mqtt = ingest_settings(cfg, embedded_port)
        if ingest:
            from app.ingest import make_ingestor
            handle.ingestor = make_ingestor(app, mqtt)
            handle.ingestor.start()
            if not handle.ingestor.connected.wait(10):
                logger.warning("ingest is not connected to %s:%s yet; it keeps trying",
                               mqtt.host, mqtt.port)
        if simulate:
            from sensors.simulator import Simulator, SimulatorSettings
            handle.simulator = Simulator(SimulatorSettings(
                host=mqtt.host, port=mqtt.port, username=mqtt.username, password=mqtt.password,
                tls=mqtt.tls, ca_file=mqtt.ca_file))
            handle.simulator.start()
        if scheduler:
            from app.scheduler import Scheduler
            handle.scheduler = Scheduler(app)
            handle.scheduler.start()
    except BaseException:
        handle.stop()
        raise
    return handle
