"""The web app's side of MQTT ingest: its database, its calibration log, its alert hook.

``sensors`` receives messages and stores readings without knowing the web app; this module
hands it a session per transaction, the calibration history that corrections come from and
the hook that evaluates alerts after each committed batch.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager

import click
from flask import Flask, current_app

from app.alerts.engine import after_ingest
from app.calibration.operations import offset_history
from app.models import db
from sensors.mqtt import Ingestor, MqttSettings
from sensors.store import store_batch


def sessions(app: Flask):
    """A factory of one-transaction sessions in an app context (rolled back unless committed)."""
    @contextmanager
    def session_scope():
        with app.app_context():
            try:
                yield db.session
            finally:
                db.session.rollback()
                db.session.remove()
    return session_scope


def make_ingestor(app: Flask, settings: MqttSettings, *, alerts: bool = True) -> Ingestor:
    """An ingest worker storing into ``app``'s database; ``alerts``: evaluate after each batch."""
    return Ingestor(settings, sessions(app),
                    store=functools.partial(store_batch, offset_history=offset_history),
                    on_batch=after_ingest(app) if alerts else None)


@click.command("ingest")
def ingest_command():
    """Run one MQTT ingest worker until SIGTERM/SIGINT (QoS 1, ack after commit)."""
    from sensors.broker import ingest_settings
    from sensors.cli import log_to_console
    log_to_console()
    # No BRIGADE_MQTT_HOST: the embedded broker (`flask sensors broker`), which speaks 3.1.1.
    settings = ingest_settings(current_app.config)
    bound = (f"at most {settings.in_flight} messages in flight, "
             f"{settings.queue_bytes // 2**20} MiB" if settings.protocol == "5"
             else "in flight as many as the broker's max_inflight_messages allows")
    click.echo(f"ingest: {settings.client_id} on {settings.host}:{settings.port} "
               f"(MQTT {settings.protocol}; {bound})")
    # Right after each committed batch, the units it touched are evaluated for alerts.
    make_ingestor(current_app._get_current_object(), settings).run_forever()
