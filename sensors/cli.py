"""``flask sensors ...``: the ingest worker and its helpers, each its own entry point."""
from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import AppGroup

sensors_cli = AppGroup("sensors", help="MQTT ingest, the embedded broker and the simulator.")


@sensors_cli.command("ingest")
def ingest():
    """Run one MQTT ingest worker until SIGTERM/SIGINT (QoS 1, ack after commit)."""
    from sensors.mqtt import Ingestor, MqttSettings
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = MqttSettings.from_config(current_app.config)
    click.echo(f"ingest: {settings.client_id} on {settings.host}:{settings.port} "
               f"(MQTT {settings.protocol})")
    Ingestor(current_app._get_current_object(), settings).run_forever()
