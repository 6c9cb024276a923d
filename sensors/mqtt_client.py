"""The one place Brigade makes a paho client: ingest, the MQTT alert channel and the simulator.

Each passes its own settings object; what the three share is read from it by name:
``protocol`` ("5" or "3.1.1"), ``username``/``password`` and ``tls``/``ca_file``.
"""
from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def make_client(settings, client_id: str, *, persistent: bool = False, manual_ack: bool = False,
                client_class: type[mqtt.Client] = mqtt.Client) -> mqtt.Client:
    """A paho 2 client for ``settings``: its protocol, credentials and TLS applied.

    ``persistent``: the broker keeps the session (and what was not acknowledged) while the
    client is away — MQTT 5 with ``clean_start=False`` at connect, or 3.1.1's clean session
    off. ``manual_ack``: messages are acknowledged by the caller (``client.ack``), not paho.
    ``client_class``: paho's Client or ingest's subclass of it.
    """
    v5 = settings.protocol == "5"
    client = client_class(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                         clean_session=None if v5 else not persistent, manual_ack=manual_ack)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    return client


def connect_properties(*, session_expiry: int | None = None,
                       receive_maximum: int | None = None) -> Properties:
    """MQTT 5 CONNECT properties: how long the broker keeps our session, how many unacked at once."""
    properties = Properties(PacketTypes.CONNECT)
    if session_expiry is not None:
        properties.SessionExpiryInterval = session_expiry
    if receive_maximum is not None:
        properties.ReceiveMaximum = receive_maximum
    return properties
