"""paho's Client, tuned for one subscriber that receives a stream and acknowledges in batches.

Stock paho reads a packet with three or more ``recv()`` calls (one byte for the packet type,
one per byte of its length, then the rest), runs ``select()`` again before every packet, and
sends every acknowledgement as its own ``send()``, after waking its network thread through a
socket pair. At thousands of readings a second those system calls, not the parsing, are what
the ingest process spends its time on. This subclass keeps everything else of paho (connect,
session, keepalive, reconnect, TLS, callbacks) and changes these:

* the socket is read in 64 KiB chunks and served to paho's packet reader from memory. The
  wrapper reports buffered bytes through ``pending()``, which paho's loop already honours for
  TLS sockets, so it never sleeps in ``select()`` while a packet is waiting in the buffer;
* ``loop_read`` reads every complete packet available (up to ``READ_BURST``) instead of one;
* ``ack_many`` acknowledges a whole batch of QoS 1 messages as one write;
* a QoS 1 PUBLISH for a manual-ack client, without MQTT 5 properties (what sensors send), is
  decoded in a few slices and handed straight to ``on_message`` when no per-topic callbacks
  are registered. paho's general path builds a ``Properties`` object (clearing 27 attributes
  by name) and walks its topic matcher for every message; anything else still takes it.

The fast path leaves ``message.properties`` None (there are none) and skips paho's debug
log line per message. Acknowledgements carry the connection ``epoch`` their messages came on:
``reconnect()`` moves it on first, so an ack for an earlier connection is dropped instead of
reaching the new one — where it could precede CONNECT (a protocol error) or name a message
that id no longer means. The broker redelivers those messages; storage ignores repeats.

Why it exists: ``bench/ingest.py`` runs Brigade's ingest on it and on stock paho in the same
run; on stock paho ingest falls short of the targets (10,000 readings/s committed, 60 % of a
bare stock paho subscriber) because paho's network thread, not the database, is the limit.
It relies on paho internals (listed in ``PAHO_INTERNALS``), so requirements.txt pins
paho-mqtt to the 2.2 series it was written against; :func:`check_paho` refuses any other
(``tests/test_mqtt_client.py`` fails on one), and ``BRIGADE_MQTT_CLIENT=stock`` runs ingest
on plain paho instead.
"""
from __future__ import annotations

import struct
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTErrorCode, MQTTMessage, MQTTv5

#: The paho versions whose internals this was written and tested against.
PAHO_SERIES = "2.2."
#: paho.mqtt.client.Client's private members used here: attributes set in __init__ and
#: methods overridden or called. Any other paho must be checked against this list again.
PAHO_INTERNALS = {
    "attributes": ("_in_packet", "_manual_ack", "_protocol", "_in_callback_mutex", "_userdata",
                   "_sock", "_transport"),
    "methods": {"_handle_publish": ("self",), "_create_socket": ("self",),
                "_packet_read": ("self",), "_packet_queue": ("self", "command", "packet", "mid",
                                                             "qos", "info"),
                "_loop_rc_handle": ("self", "rc"), "_easy_log": ("self", "level", "fmt", "args")},
}


def check_paho() -> None:
    """Raise RuntimeError unless the installed paho has the internals this client relies on."""
    import inspect

    import paho.mqtt
    problems = []
    if not paho.mqtt.__version__.startswith(PAHO_SERIES):
        problems.append(f"paho-mqtt {paho.mqtt.__version__} is not {PAHO_SERIES}x")
    probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    for name in PAHO_INTERNALS["attributes"]:
        if not hasattr(probe, name):
            problems.append(f"Client has no {name}")
    for name, params in PAHO_INTERNALS["methods"].items():
        method = getattr(mqtt.Client, name, None)
        if method is None:
            problems.append(f"Client has no {name}()")
        elif tuple(inspect.signature(method).parameters) != params:
            problems.append(f"Client.{name}{inspect.signature(method)} differs")
    if problems:
        raise RuntimeError("ingest's batching client does not fit this paho (" +
                           "; ".join(problems) + "): set BRIGADE_MQTT_CLIENT=stock")


#: Packets read per loop iteration before paho gets to write (acks, pings) again.
READ_BURST = 512
RECV_CHUNK = 65536
_PUBACK = struct.Struct("!BBH")


class BufferedSocket:
    """A socket whose ``recv`` is served from a buffer filled a chunk at a time."""

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock):
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            # BlockingIOError / ssl.SSLWantReadError propagate to paho, as from a plain socket.
            data = self._sock.recv(RECV_CHUNK)
            if len(data) <= bufsize:
                return data  # the common single-byte or whole-chunk case, without copying
            self._buf, self._pos = data, 0
        start = self._pos
        self._pos = end = min(start + bufsize, len(self._buf))
        if end >= len(self._buf):
            chunk = self._buf[start:]
            self._buf, self._pos = b"", 0
            return chunk
        return self._buf[start:end]

    def pending(self) -> int:
        """Bytes already read from the kernel (and, for TLS, decrypted) but not yet consumed."""
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._buf) - self._pos + inner

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name):  # send, setblocking, close, getpeername …
        return getattr(self._sock, name)


class BatchingClient(mqtt.Client):
    """A paho Client that reads in bursts and acknowledges in batches (see the module doc)."""

    _filtered_callbacks = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ack_lock = threading.Lock()
        #: Which connection this is; moves on as each (re)connection begins.
        self.epoch = 0

    def reconnect(self) -> MQTTErrorCode:
        with self._ack_lock:  # no ack of the old connection gets queued from here on
            self.epoch += 1
        return super().reconnect()

    def message_callback_add(self, sub, callback) -> None:
        self._filtered_callbacks = True  # (stays set: paho's path then, which is only slower)
        super().message_callback_add(sub, callback)

    def _handle_publish(self) -> MQTTErrorCode:
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        if (header & 0x06) != 0x02 or not self._manual_ack or self._filtered_callbacks:
            return super()._handle_publish()  # QoS 0 or 2, auto-ack, or per-topic callbacks
        size = len(packet)
        topic_end = 2 + ((packet[0] << 8) | packet[1]) if size >= 2 else size + 1
        start = topic_end + 2  # after the packet id
        v5 = self._protocol == MQTTv5
        if start + v5 > size or topic_end == 2 or (v5 and packet[start] != 0):
            return super()._handle_publish()  # malformed, empty topic, or MQTT 5 properties
        message = MQTTMessage(mid=(packet[topic_end] << 8) | packet[topic_end + 1],
                              topic=bytes(packet[2:topic_end]))
        message.dup = bool(header & 0x08)
        message.qos = 1
        message.retain = bool(header & 0x01)
        message.payload = bytes(packet[start + v5:])
        message.timestamp = mqtt.time_func()
        on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        return MQTTErrorCode.MQTT_ERR_SUCCESS  # acknowledged later, by ack_many

    def _create_socket(self):
        sock = super()._create_socket()
        if self._transport == "websockets":
            return sock  # paho's websocket wrapper buffers frames itself
        return BufferedSocket(sock)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read every complete packet waiting (up to READ_BURST), not just one."""
        for _ in range(max(max_packets, READ_BURST)):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids, epoch: int | None = None) -> MQTTErrorCode:
        """Acknowledge these QoS 1 messages (by packet id) in one write.

        Like ``ack()``, only for a client made with ``manual_ack=True``. ``epoch``: the
        connection they came on (``self.epoch`` in ``on_message``); if that connection is
        gone, nothing is sent.
        """
        if not self._manual_ack:
            return MQTTErrorCode.MQTT_ERR_SUCCESS  # paho acknowledged them itself
        pack = _PUBACK.pack
        packet = b"".join([pack(mqtt.PUBACK, 2, mid) for mid in mids])
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        with self._ack_lock:
            if epoch is not None and epoch != self.epoch:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            return self._packet_queue(mqtt.PUBACK, packet, 0, 1)
