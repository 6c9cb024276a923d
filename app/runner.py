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

    port_file: object | None = None  # pathlib.Path naming the embedded broker's port

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
        if self.port_file is not None:
            self.port_file.unlink(missing_ok=True)
            self.port_file = None


def _write_port_file(app: Flask, port: int):
    """Name the embedded broker's port in the instance folder (see sensors.broker.PORT_FILE)."""
    from pathlib import Path

    from sensors.broker import PORT_FILE
    path = Path(app.instance_path) / PORT_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{port}\n")
    except OSError as exc:  # a read-only instance folder costs only the simulator's default
        logger.warning("cannot write %s: %s", path, exc)
        return None
    return path


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
    from sensors.broker import EmbeddedBroker, choose_port, ingest_settings, try_it_line
    cfg = app.config
    simulate = cfg["BRIGADE_SIMULATE"] if simulate is None else simulate
    handle = Background()
    try:
        embedded_port = None
        if broker and not cfg["BRIGADE_MQTT_HOST"]:
            wanted = cfg["BRIGADE_EMBEDDED_BROKER_PORT"]
            port = choose_port(wanted, cfg["BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT"])
            if port != wanted:
                # Typically a system Mosquitto on 1883: the fallback is the same at every start.
                logger.warning("127.0.0.1:%s is taken (another MQTT broker?); the embedded broker "
                               "uses its fallback port %s (BRIGADE_EMBEDDED_BROKER_FALLBACK_PORT). "
                               "Devices publish to port %s, or set BRIGADE_MQTT_HOST to use the "
                               "broker on %s.", wanted, port, port, wanted)
            handle.broker = EmbeddedBroker(port)
            handle.broker.start()
            embedded_port = handle.broker.port
            handle.port_file = _write_port_file(app, embedded_port)
            logger.info("MQTT: embedded broker on 127.0.0.1:%s. Try it: %s", embedded_port,
                        try_it_line(embedded_port))
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
