"""The ingest's paho subclass (buffered reads, batch acks, lean PUBLISH path) on a real Mosquitto."""
import socket
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sensors.batching_client import RECV_CHUNK, BatchingClient, BufferedSocket
from tests.services import wait_until


def test_buffered_socket_serves_small_reads_from_one_chunk():
    a, b = socket.socketpair()
    a.setblocking(False)
    sock = BufferedSocket(a)
    try:
        b.sendall(b"\x32\x0aabcdefgh")
        assert sock.recv(1) == b"\x32"
        assert sock.pending() == 9
        assert sock.recv(1) == b"\x0a"
        assert sock.recv(3) == b"abc"
        assert sock.recv(100) == b"defgh"
        assert sock.pending() == 0
        with pytest.raises(BlockingIOError):
            sock.recv(1)  # nothing buffered, nothing in the kernel: as a plain socket says
        big = bytes(range(256)) * (3 * RECV_CHUNK // 256)
        b.sendall(big)
        got = bytearray()
        assert wait_until(lambda: sock.pending() or select_ready(a), 5)
        while len(got) < len(big):
            try:
                got += sock.recv(len(big) - len(got))
            except BlockingIOError:
                time.sleep(0.01)
        assert bytes(got) == big
        b.close()
        assert sock.recv(1) == b""  # the peer closed: paho's signal for a lost connection
        assert sock.fileno() == a.fileno()
    finally:
        a.close()


def select_ready(sock):
    import select
    return bool(select.select([sock], [], [], 0)[0])


class Subscriber:
    """A BatchingClient on a persistent session that records what it is given."""

    def __init__(self, port, client_id, protocol, manual_ack=True):
        v5 = protocol == "5"
        self.client = BatchingClient(CallbackAPIVersion.VERSION2, client_id=client_id,
                                     protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                                     clean_session=None if v5 else False, manual_ack=manual_ack)
        self.messages: list[mqtt.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.client.on_message = lambda c, u, msg: self.messages.append(msg)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("test/#", qos=1)
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.disconnected = threading.Event()
        self.client.on_disconnect = lambda *args: self.disconnected.set()
        self.answered = threading.Event()
        self.client.on_unsubscribe = lambda *args: self.answered.set()
        if v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 300
            self.client.connect("127.0.0.1", port, clean_start=False, properties=props)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def round_trip(self):
        """Wait until the broker has handled everything sent so far (it answers in order)."""
        self.answered.clear()
        self.client.unsubscribe("test/never-subscribed")
        assert self.answered.wait(10)

    def close(self):
        if self.client.is_connected():
            # Else a successor with the same client id can take the session over before the
            # broker has read our last acks, and have them redelivered.
            self.round_trip()
        self.disconnected.clear()
        self.client.disconnect()
        # Queued acks go out before DISCONNECT, and on_disconnect comes after it is written:
        # stopping the loop earlier could drop them.
        assert self.disconnected.wait(10)
        self.client.loop_stop()


def plain_publisher(port):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_kind_of_publish_arrives_intact(mosquitto_port, protocol):
    sub = Subscriber(mosquitto_port, f"bc-kinds-{protocol}-{time.time_ns()}", protocol)
    pub = plain_publisher(mosquitto_port)
    try:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("site", "kitchen-1")
        big = b"x" * 1_000_000  # spans many 64 KiB reads
        sent = [
            ("test/plain", b'{"t": 3.5}', 1, False, None),
            ("test/empty", b"", 1, False, None),
            ("test/props", b"4.0", 1, False, props),   # MQTT 5 properties: paho's own path
            ("test/qos0", b"5.0", 0, False, None),     # QoS 0: paho's own path
            ("test/big", big, 1, False, None),
            ("test/\u51b7\u85cf", "2.5 \u00b0C".encode(), 1, False, None),
        ]
        for topic, payload, qos, retain, properties in sent:
            pub.publish(topic, payload, qos=qos, retain=retain, properties=properties).wait_for_publish(5)
        assert wait_until(lambda: len(sub.messages) == len(sent), 10), [m.topic for m in sub.messages]
        got = {m.topic: m for m in sub.messages}
        for topic, payload, qos, _retain, _properties in sent:
            assert got[topic].payload == payload
            assert got[topic].qos == qos
            assert not got[topic].dup and not got[topic].retain
            assert (got[topic].mid > 0) == (qos == 1)
        if protocol == "5":
            assert got["test/props"].properties.UserProperty == [("site", "kitchen-1")]
        sub.client.ack_many([m.mid for m in sub.messages if m.qos == 1])
    finally:
        pub.loop_stop()
        sub.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_acknowledged_messages_stay_acknowledged_and_the_rest_come_back(mosquitto_port, protocol):
    client_id = f"bc-acks-{protocol}-{time.time_ns()}"
    sub = Subscriber(mosquitto_port, client_id, protocol)
    pub = plain_publisher(mosquitto_port)
    try:
        for i in range(300):
            pub.publish("test/acks", str(i), qos=1)
        assert wait_until(lambda: len(sub.messages) == 300, 10), len(sub.messages)
        acked = sub.messages[:220]
        sub.client.ack_many([m.mid for m in acked])
        sub.client.ack_many([])  # nothing to send: no empty write
    finally:
        pub.loop_stop()
        sub.close()  # the DISCONNECT goes out after the queued acknowledgements
    again = Subscriber(mosquitto_port, client_id, protocol)
    try:
        assert wait_until(lambda: len(again.messages) >= 80, 10), len(again.messages)
        time.sleep(0.5)  # anything acknowledged but redelivered would arrive by now
        assert sorted(int(m.payload) for m in again.messages) == list(range(220, 300))
        assert all(m.dup for m in again.messages)
        again.client.ack_many([m.mid for m in again.messages])
    finally:
        again.close()


def test_per_topic_callbacks_still_work(mosquitto_port):
    sub = Subscriber(mosquitto_port, f"bc-filtered-{time.time_ns()}", "5")
    filtered = []
    sub.client.message_callback_add("test/special/#", lambda c, u, m: filtered.append(m))
    pub = plain_publisher(mosquitto_port)
    try:
        pub.publish("test/special/a", b"1", qos=1).wait_for_publish(5)
        pub.publish("test/other", b"2", qos=1).wait_for_publish(5)
        assert wait_until(lambda: filtered and sub.messages, 10)
        assert [m.payload for m in filtered] == [b"1"]
        assert [m.payload for m in sub.messages] == [b"2"]
    finally:
        pub.loop_stop()
        sub.close()


def test_a_raising_callback_is_logged_and_reading_goes_on(mosquitto_port):
    sub = Subscriber(mosquitto_port, f"bc-raise-{time.time_ns()}", "5")
    sub.client.suppress_exceptions = True
    seen = []

    def on_message(client, userdata, msg):
        seen.append(msg.payload)
        if msg.payload == b"bad":
            raise ValueError("boom")
    sub.client.on_message = on_message
    pub = plain_publisher(mosquitto_port)
    try:
        for payload in (b"bad", b"good"):
            pub.publish("test/raise", payload, qos=1).wait_for_publish(5)
        assert wait_until(lambda: seen == [b"bad", b"good"], 10), seen
    finally:
        pub.loop_stop()
        sub.close()


def test_acks_for_a_lost_connection_are_dropped_not_sent_on_the_next(mosquitto_port):
    client_id = f"bc-epoch-{time.time_ns()}"
    sub = Subscriber(mosquitto_port, client_id, "5")
    pub = plain_publisher(mosquitto_port)
    try:
        for i in range(50):
            pub.publish("test/epoch", str(i), qos=1)
        assert wait_until(lambda: len(sub.messages) == 50, 10)
        first_epoch, first = sub.client.epoch, list(sub.messages)
        sub.messages.clear()
        sub.subscribed.clear()
        sub.client.socket().shutdown(socket.SHUT_RDWR)  # the network drops; paho reconnects
        assert wait_until(lambda: sub.client.epoch == first_epoch + 1 and len(sub.messages) == 50, 20)
        assert all(m.dup for m in sub.messages)  # redelivered on the new connection
        # The batch of the old connection is committed only now: its acks must not go out on
        # the new connection (the broker reuses those ids for the redelivered messages).
        sub.client.ack_many([m.mid for m in first], first_epoch)
    finally:
        pub.loop_stop()
        sub.close()
    again = Subscriber(mosquitto_port, client_id, "5")
    try:
        assert wait_until(lambda: len(again.messages) == 50, 10), len(again.messages)
        again.client.ack_many([m.mid for m in again.messages], again.client.epoch)
    finally:
        again.close()
    last = Subscriber(mosquitto_port, client_id, "5")
    try:
        time.sleep(0.5)
        assert last.messages == [], (len(again.messages), sorted(int(m.payload) for m in again.messages), sorted(int(m.payload) for m in last.messages), [m.mid for m in again.messages][:60], [m.mid for m in last.messages])  # acknowledged on their own connection: gone for good
    finally:
        last.close()


def test_the_batching_client_fits_the_installed_paho():
    from sensors.batching_client import check_paho
    check_paho()


def test_the_batching_client_refuses_a_paho_whose_internals_differ(monkeypatch):
    """It subclasses paho's private internals: another paho must fail loudly, not misbehave."""
    import paho.mqtt
    from sensors.batching_client import check_paho
    monkeypatch.setattr(paho.mqtt, "__version__", "2.3.0")
    with pytest.raises(RuntimeError, match="2.3.0 is not 2.2.x.*BRIGADE_MQTT_CLIENT=stock"):
        check_paho()
    monkeypatch.undo()
    monkeypatch.delattr(mqtt.Client, "_packet_read")
    with pytest.raises(RuntimeError, match="no _packet_read"):
        check_paho()
    monkeypatch.undo()

    def _packet_queue(self, command, packet, mid, qos, info=None, retain=False):
        pass
    monkeypatch.setattr(mqtt.Client, "_packet_queue", _packet_queue)
    with pytest.raises(RuntimeError, match="_packet_queue.*differs"):
        check_paho()
