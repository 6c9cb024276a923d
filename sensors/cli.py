"""``flask sensors ...``: the embedded broker and the simulator, each its own entry point.

``flask sensors ingest`` joins this group from the web app (:mod:`app.ingest`), which owns
the database that ingest writes to.
"""
from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import AppGroup

sensors_cli = AppGroup("sensors", help="MQTT ingest, the embedded broker and the simulator.")


def log_to_console() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@sensors_cli.command("broker")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port on 127.0.0.1 (default BRIGADE_EMBEDDED_BROKER_PORT, 1883).")
def broker(port):
    """Run the embedded MQTT broker (amqtt, MQTT 3.1.1, 127.0.0.1 only) until SIGTERM/SIGINT."""
    from sensors.broker import BrokerError, EmbeddedBroker
    log_to_console()
    if current_app.config["BRIGADE_MQTT_HOST"]:
        click.echo(f"note: BRIGADE_MQTT_HOST={current_app.config['BRIGADE_MQTT_HOST']} is set, so "
                   "Brigade's ingest uses that broker, not this one", err=True)
    server = EmbeddedBroker(port or current_app.config["BRIGADE_EMBEDDED_BROKER_PORT"])
    try:
        server.run_forever()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None


def embedded_port() -> int:
    """The port the app's embedded broker is on: the one a running `flask serve` wrote to the
    instance folder (its fallback when 1883 was taken), else BRIGADE_EMBEDDED_BROKER_PORT."""
    from pathlib import Path

    from sensors.broker import PORT_FILE, port_is_free
    path = Path(current_app.instance_path) / PORT_FILE
    try:
        port = int(path.read_text().strip())
    except (OSError, ValueError):
        return current_app.config["BRIGADE_EMBEDDED_BROKER_PORT"]
    # A file left by a Brigade that was killed names a port nobody listens on any more.
    if 1 <= port <= 65535 and not port_is_free(port):
        return port
    return current_app.config["BRIGADE_EMBEDDED_BROKER_PORT"]


@sensors_cli.command("simulate")
@click.option("--host", default=None,
              help="Broker host (default BRIGADE_MQTT_HOST, else the embedded broker's 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Broker port (default BRIGADE_MQTT_PORT, else the port the app's embedded "
                   "broker is on, else BRIGADE_EMBEDDED_BROKER_PORT).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True,
              help="Time multiplier: 60 plays a simulated hour in a real minute.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many real seconds (default: run until Ctrl-C).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for noise and doors.")
@click.option("--protocol", type=click.Choice(["3.1.1", "5"]), default="3.1.1", show_default=True,
              help="MQTT version the simulated devices speak.")
@click.option("--interval", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Simulated seconds between a device's samples.")
@click.option("--fail-after", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Simulated minutes until the cold-dish fridge's compressor fails.")
@click.option("--silent-after", type=click.FloatRange(min=0), default=45.0, show_default=True,
              help="Simulated minutes until the prep fridge's sensor goes silent.")
def simulate(host, port, speed, seconds, seed, protocol, interval, fail_after, silent_after):
    """Publish realistic fridge and freezer traces for the demo kitchen (QoS 1)."""
    import signal

    from sensors.simulator import Simulator, SimulatorSettings
    log_to_console()
    cfg = current_app.config
    configured = cfg["BRIGADE_MQTT_HOST"]
    default_port = cfg["BRIGADE_MQTT_PORT"] if configured else embedded_port()
    use_config_broker = bool(configured) and host in (None, configured)
    settings = SimulatorSettings(
        host=host or configured or "127.0.0.1",
        port=port or default_port,
        protocol=protocol,
        # Against the configured broker, connect with Brigade's credentials.
        username=cfg["BRIGADE_MQTT_USERNAME"] if use_config_broker else None,
        password=cfg["BRIGADE_MQTT_PASSWORD"] if use_config_broker else None,
        tls=cfg["BRIGADE_MQTT_TLS"] if use_config_broker else False,
        ca_file=cfg["BRIGADE_MQTT_CA_FILE"] if use_config_broker else None,
        speed=speed, interval_s=interval, seconds=seconds, seed=seed,
        fail_after_s=fail_after * 60, silent_after_s=silent_after * 60)
    simulator = Simulator(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: simulator.stop(timeout=0))
    click.echo(f"simulating {len(simulator.devices)} devices on {settings.host}:{settings.port} "
               f"(MQTT {protocol}, {speed:g}x)")
    for device in simulator.devices:
        click.echo(f"  {device.unit or '(unassigned)':17} {device.format:12} {device.sensor_key}")
    simulator.run()
    click.echo("published: " + ", ".join(f"{fmt} {count}" for fmt, count
                                         in sorted(simulator.published.items())))
