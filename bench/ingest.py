#!/usr/bin/env python3
"""MQTT ingest benchmark: Brigade's ingest committing to SQLite against a bare paho subscriber.

One run starts its own Mosquitto (a fresh broker on a free port for every measurement, never
127.0.0.1:1883) and, for each repetition, measures with the same publisher:

1. the publisher alone: raw-socket MQTT 3.1.1 processes (``--publishers``) writing CONNECT +
   pipelined QoS 1 PUBLISH packets and reading the PUBACKs, into a broker whose only
   subscriber drains its socket (QoS 0) and does nothing else. This is the publisher's own
   ceiling (a paho publisher manages only about 10,000 messages/s here);
2. (a) a bare paho 2 subscriber in its own process: MQTT 5 (``--protocol``), persistent
   session, QoS 1, auto-ack, counting messages only, timed from its first message to its last;
   (a') the same subscriber on Brigade's own paho subclass (``sensors.batching_client.BatchingClient``:
   buffered reads, manual acks sent 1,000 at a time), counting only: what storing costs on top
   of the client the ingest really uses;
3. (b) Brigade's ingest, the real ``flask --app app sensors ingest`` in its own process on a
   fresh SQLite database (migrated once with ``flask db upgrade``, copied per run), timed from
   the publisher's first PUBLISH to the moment the committed readings in the database reach N
   (the bench polls the database; only committed rows are visible to it). Its resident memory
   (VmRSS at the end, VmHWM peak) and CPU seconds per thread are read from /proc.

The messages (``--format mix``, the default) are what kitchens' devices send, across
``--sensors`` sensors with a vendor each in turn: Brigade JSON, Zigbee2MQTT, Shelly Gen2 (with
battery in the payload and a device time), Tasmota (device-local time, so stored at receive
time), ESPHome and Shelly Gen1 (bare numbers, stored at receive time with their delivery
recorded), with availability messages and separate battery messages among them; every reading
is distinct. Every sensor is attached to a fridge (``--no-attach`` leaves them unassigned), so
each batch also runs the alert evaluation of the units it touched — the whole path a kitchen
runs. ``--format json`` / ``bare``: only Brigade JSON / only bare numbers.
Subscribers connect and subscribe first; then the publisher starts. The publisher's rate is
printed for (a) and (b) as well: it should stay well above both.

Prints each repetition and a table of medians, and writes everything with machine facts (and
the load average: other work on the machine skews every rate) to ``bench/results/ingest.json``.
``--help`` lists the options; ``--profile ingest.svg`` runs the ingest under py-spy.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import marshal
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "ingest.json"
UTC = dt.timezone.utc
sys.path.insert(0, str(ROOT))
from sensors.formats import SUBSCRIPTIONS  # noqa: E402 - what ingest subscribes to, the same here
TARGET_RATE = 10_000
TARGET_RATIO = 0.60


# --- tiny MQTT 3.1.1 over a raw socket (publisher and drain) ------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def _connect_packet(client_id: str, keepalive: int = 600) -> bytes:
    body = _string("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _string(client_id)
    return b"\x10" + _varint(len(body)) + body


def _publish_qos1(topic: bytes, mid: int, payload: bytes) -> bytes:
    body = _string(topic) + struct.pack("!H", mid) + payload
    return b"\x32" + _varint(len(body)) + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def _raw_connect(port: int, client_id: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(_connect_packet(client_id))
    connack = _recv_exact(sock, 4)
    if connack[0] != 0x20 or connack[3] != 0:
        raise ConnectionError(f"CONNACK refused: {connack!r}")
    return sock


#: The mix's vendors, one per sensor in turn: how real devices send (``--format mix``).
VENDORS = ("brigade", "zigbee2mqtt", "shelly_gen2", "tasmota", "esphome", "shelly_gen1")
#: In the mix, every AVAILABILITY_EVERY-th message of the run is an availability (Last Will /
#: birth) message, and for devices that send battery on its own topic every
#: BATTERY_EVERY-th is a battery message: neither is a reading.
AVAILABILITY_EVERY = 40
BATTERY_EVERY = 20


def message(i: int, sensors: int, base: dt.datetime, fmt: str = "mix") -> tuple[bytes, bytes, bool]:
    """Message i of the run: its topic, payload, and whether it is a (distinct) reading.

    ``mix`` (default): what kitchens' devices send, a vendor per sensor in turn (Brigade JSON,
    Zigbee2MQTT, Shelly Gen2, Tasmota, ESPHome, Shelly Gen1), battery in every payload that
    carries it, availability and battery-only messages among the readings; half the vendors
    give a device time, half (Tasmota's local time, bare numbers) are stored at their receive
    time with their delivery recorded. ``json``: Brigade JSON with the device's timestamp.
    ``bare``: a bare number, as Shelly Gen1, ESPHome and plain sensors send.
    """
    value = round(2.0 + (i % 30) / 10, 1)  # a steady fridge: 2.0–4.9 °C, within its limits
    k = i % sensors
    if fmt == "bare":
        return f"brigade/bench-{k:03d}/temperature".encode(), str(value).encode(), True
    ts = base + dt.timedelta(milliseconds=i)
    if fmt == "json":
        payload = json.dumps({"t": value, "ts": ts.isoformat()})
        return f"brigade/bench-{k:03d}/reading".encode(), payload.encode(), True
    vendor, name = VENDORS[k % len(VENDORS)], f"bench-{k:03d}"
    battery = 80 + k % 20
    if i % AVAILABILITY_EVERY == AVAILABILITY_EVERY - 1:
        topic, payload = {
            "brigade": (f"brigade/{name}/status", "online"),
            "zigbee2mqtt": (f"zigbee2mqtt/{name}/availability", '{"state":"online"}'),
            "shelly_gen2": (f"shellyhtg3-{name}/online", "true"),
            "tasmota": (f"tele/{name}/LWT", "Online"),
            "esphome": (f"{name}/status", "online"),
            "shelly_gen1": (f"shellies/{name}/online", "true"),
        }[vendor]
        return topic.encode(), payload.encode(), False
    if i % BATTERY_EVERY == BATTERY_EVERY - 1 and vendor in ("esphome", "shelly_gen1"):
        topic = (f"{name}/sensor/battery/state" if vendor == "esphome"
                 else f"shellies/{name}/sensor/battery")
        return topic.encode(), str(battery).encode(), False
    return (*reading_message(vendor, name, value, battery, ts), True)


def reading_message(vendor: str, name: str, value: float, battery: int,
                    ts: dt.datetime) -> tuple[bytes, bytes]:
    """A reading as the vendor's device sends it (see sensors/formats and its samples)."""
    if vendor == "brigade":
        topic, body = f"brigade/{name}/reading", {"t": value, "ts": ts.isoformat(), "battery": battery}
    elif vendor == "zigbee2mqtt":
        topic, body = f"zigbee2mqtt/{name}", {"battery": battery, "voltage": 2985,
                                              "temperature": value, "humidity": 46.1,
                                              "linkquality": 120, "last_seen": ts.isoformat()}
    elif vendor == "shelly_gen2":
        topic, body = f"shellyhtg3-{name}/events/rpc", {
            "src": f"shellyhtg3-{name}", "dst": f"shellyhtg3-{name}/events",
            "method": "NotifyStatus",
            "params": {"ts": round(ts.timestamp(), 3),
                       "temperature:0": {"id": 0, "tC": value, "tF": round(value * 1.8 + 32, 1)},
                       "devicepower:0": {"id": 0, "battery": {"V": 5.9, "percent": battery}}}}
    elif vendor == "tasmota":
        topic, body = f"tele/{name}/SENSOR", {
            "Time": ts.replace(tzinfo=None).isoformat(timespec="seconds"),
            "DS18B20": {"Id": "01131B", "Temperature": value}, "TempUnit": "C"}
    elif vendor == "esphome":
        return f"{name}/sensor/fridge_temp/state".encode(), str(value).encode()
    else:
        return f"shellies/{name}/sensor/temperature".encode(), str(value).encode()
    return topic.encode(), json.dumps(body, separators=(",", ":")).encode()


def role_publisher(args) -> None:
    """Publish the PUBLISH packets in --packets at QoS 1, pipelined, and read their PUBACKs."""
    packets = marshal.loads(Path(args.packets).read_bytes())
    total = len(packets)
    sock = _raw_connect(args.port, f"bench-pub-{os.getpid()}-{args.index}")
    acked = 0
    last_ack = 0.0
    error: list[str] = []

    def read_acks():
        nonlocal acked, last_ack
        rest = b""
        while acked < total:
            data = sock.recv(1 << 16)
            if not data:
                error.append("broker closed the connection")
                return
            data = rest + data
            whole = len(data) - len(data) % 4
            if data[0:whole:4].count(0x40) != whole // 4:
                error.append(f"unexpected packet from broker: {data[:8]!r}")
                return
            rest = data[whole:]
            acked += whole // 4
        last_ack = time.monotonic()

    reader = threading.Thread(target=read_acks, daemon=True)
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    reader.start()
    first_send = time.monotonic()
    sent = 0
    chunk = 256
    while sent < total:
        while sent - acked > args.window and not error:
            time.sleep(0.0002)
        if error:
            break
        sock.sendall(b"".join(packets[sent:sent + chunk]))
        sent += len(packets[sent:sent + chunk])
    reader.join(120)
    if error or acked < total:
        print(json.dumps({"error": error[0] if error else f"only {acked}/{total} acked"}), flush=True)
        sys.exit(1)
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"messages": total, "first_send": first_send, "last_ack": last_ack,
                      "cpu": usage.ru_utime + usage.ru_stime - cpu0}), flush=True)


def fresh_base(args) -> dt.datetime:
    """The first message's device time: the run's device times, 1 ms apart, end 30 s before
    now — recent, as a kitchen's devices' are (an hour-old reading is a fridge gone silent
    and makes every batch raise an offline alert), and never ahead of their receive time."""
    return dt.datetime.now(UTC) - dt.timedelta(milliseconds=args.messages, seconds=30)


def write_packets(workdir: Path, args, base: dt.datetime) -> tuple[list[Path], int]:
    """Publisher k's packets (messages k, k+P, k+2P ...), built once per run, reused by every
    measurement (each has a fresh broker and database); and how many of them are readings."""
    files, readings = [], 0
    for k in range(args.publishers):
        packets = []
        for n, i in enumerate(range(k, args.messages, args.publishers)):
            topic, payload, is_reading = message(i, args.sensors, base, args.format)
            readings += is_reading
            packets.append(_publish_qos1(topic, (n % 65535) + 1, payload))
        path = workdir / f"packets-{k}.marshal"
        path.write_bytes(marshal.dumps(packets))
        files.append(path)
    return files, readings


def role_drain(args) -> None:
    """A subscriber that does nothing heavy: QoS 0, reads and discards its socket."""
    sock = _raw_connect(args.port, f"bench-drain-{os.getpid()}")
    body = struct.pack("!H", 1) + b"".join(_string(f) + b"\x00" for f in SUBSCRIPTIONS)
    sock.sendall(b"\x82" + _varint(len(body)) + body)
    suback = _recv_exact(sock, 4 + len(SUBSCRIPTIONS))
    if suback[0] != 0x90:
        raise ConnectionError(f"SUBACK expected: {suback!r}")
    print("ready", flush=True)
    received = 0
    while True:
        data = sock.recv(1 << 18)
        if not data:
            break
        received += len(data)


def role_bare(args) -> None:
    """(a) The paho ceiling: MQTT 5, persistent session, QoS 1, auto-ack, count only.

    With ``--client batching``, (a'): Brigade's BatchingClient, acking 1,000 at a time.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    state = {"count": 0, "first": None, "last": None}
    cpu0 = 0.0
    expected = args.messages
    v5 = args.protocol == "5"
    batching = args.client == "batching"
    if batching:
        sys.path.insert(0, str(ROOT))
        from sensors.batching_client import BatchingClient as Client
    else:
        Client = mqtt.Client
    client = Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{os.getpid()}",
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                    clean_session=None if v5 else False, manual_ack=batching)
    unacked: list[int] = []

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe([(f, 1) for f in SUBSCRIPTIONS])

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print("ready", flush=True)

    def on_message(client, userdata, msg):
        nonlocal cpu0
        now = time.monotonic()
        if state["first"] is None:
            state["first"] = now
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = usage.ru_utime + usage.ru_stime
        state["count"] += 1
        if batching:
            unacked.append(msg.mid)
            if len(unacked) >= 1000 or state["count"] >= expected:
                client.ack_many(unacked)
                unacked.clear()
        if state["count"] >= expected:
            state["last"] = now
            client.disconnect()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    if v5:  # as Brigade's ingest connects
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300
        props.ReceiveMaximum = 65535
        client.connect("127.0.0.1", args.port, keepalive=60, clean_start=False, properties=props)
    else:
        client.connect("127.0.0.1", args.port, keepalive=60)
    threading.Timer(args.timeout, lambda: (os._exit(3))).start()
    client.loop_forever()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"messages": state["count"], "first": state["first"], "last": state["last"],
                      "cpu": usage.ru_utime + usage.ru_stime - cpu0}), flush=True)
    os._exit(0)


# --- orchestration -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A throwaway Mosquitto on a free port: persistence off, unbounded queues and in-flight."""

    def __init__(self, workdir: Path, binary: str):
        self.workdir, self.binary = workdir, binary
        self.port = free_port()
        conf = workdir / f"mosquitto-{self.port}.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=open(workdir / f"mosquitto-{self.port}.log", "wb"))
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto did not start on port {self.port}") from None
                time.sleep(0.02)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def me(role: str, *extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--role", role, *extra]


def wait_line(proc: subprocess.Popen, expect: str, timeout: float = 60) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    line = result[0].strip() if result else ""
    if expect and line != expect:
        raise RuntimeError(f"{proc.args[3:5]}: expected {expect!r}, got {line!r} "
                           f"(exit {proc.poll()})")
    return line


class Publishers:
    """P raw-socket publisher processes, connected and holding their packets, waiting for "go"."""

    def __init__(self, args, port: int, files: list[Path]):
        self.procs = [subprocess.Popen(
            me("publisher", "--port", str(port), "--index", str(k), "--packets", str(path),
               "--window", str(args.window)),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for k, path in enumerate(files)]
        for proc in self.procs:
            wait_line(proc, "ready")

    def go(self) -> None:
        for proc in self.procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def result(self, timeout: float = 300) -> dict:
        reports = []
        for proc in self.procs:
            line = wait_line(proc, "", timeout)
            report = json.loads(line) if line else {"error": f"no report (exit {proc.poll()})"}
            if "error" in report:
                raise RuntimeError(f"publisher failed: {report['error']}")
            reports.append(report)
            proc.wait(10)
        first = min(r["first_send"] for r in reports)
        last = max(r["last_ack"] for r in reports)
        total = sum(r["messages"] for r in reports)
        return {"first_send": first, "last_ack": last, "seconds": last - first,
                "rate": total / (last - first), "cpu_seconds": sum(r["cpu"] for r in reports)}


def stop(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a live process, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of a process, by thread id."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = cpu_seconds(pid, int(task.name))
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_publisher(args, workdir: Path, mosquitto: str, packets: list[Path]) -> dict:
    broker = Broker(workdir, mosquitto)
    drain = None
    try:
        drain = subprocess.Popen(me("drain", "--port", str(broker.port)), stdout=subprocess.PIPE,
                                 text=True)
        wait_line(drain, "ready")
        pubs = Publishers(args, broker.port, packets)
        pubs.go()
        result = pubs.result()
        return {"rate": result["rate"], "seconds": result["seconds"]}
    finally:
        if drain is not None:
            stop(drain)
        broker.stop()


def measure_bare(args, workdir: Path, mosquitto: str, packets: list[Path],
                 client: str = "paho") -> dict:
    broker = Broker(workdir, mosquitto)
    bare = None
    try:
        bare = subprocess.Popen(me("bare", "--port", str(broker.port), "--messages",
                                   str(args.messages), "--timeout", str(args.timeout),
                                   "--protocol", args.protocol, "--client", client),
                                stdout=subprocess.PIPE, text=True)
        wait_line(bare, "ready")
        pubs = Publishers(args, broker.port, packets)
        pubs.go()
        pub = pubs.result()
        line = wait_line(bare, "", args.timeout)
        if not line:
            raise RuntimeError(f"bare subscriber gave no report (exit {bare.poll()})")
        report = json.loads(line)
        if report["messages"] != args.messages:
            raise RuntimeError(f"bare subscriber got {report['messages']} of {args.messages}")
        seconds = report["last"] - report["first"]
        return {"rate": args.messages / seconds, "seconds": seconds,
                "publisher_rate": pub["rate"], "publisher_seconds": pub["seconds"],
                "cpu_seconds": report["cpu"]}
    finally:
        if bare is not None:
            stop(bare)
        broker.stop()


SEED_KITCHEN = """
import json, sys
from app import create_app
from app.models import Site, db
from app.models.units import Unit
from sensors import formats
from sensors.models import Sensor
app = create_app()
samples = json.loads(sys.stdin.read())
with app.app_context():
    site = Site(name="Bench kitchen", timezone="Europe/London", temp_unit="C")
    db.session.add(site)
    db.session.flush()
    for n, (topic, payload) in enumerate(samples):
        unit = Unit(site_id=site.id, name=f"Fridge {n}", kind="fridge",
                    target_max_c=5.0, critical_max_c=8.0, alert_delay_s=600,
                    critical_delay_s=120, hysteresis_c=0.5, expected_interval_s=60,
                    offline_after=5)
        db.session.add(unit)
        db.session.flush()
        key = formats.parse(topic, payload.encode())[0].sensor
        db.session.add(Sensor(key=key, unit_id=unit.id, temp_unit="C"))
    db.session.commit()
    print(db.session.scalar(db.select(db.func.count()).select_from(Sensor)))
"""


def prepare_database(workdir: Path, env: dict, args, base: dt.datetime) -> Path:
    """Migrate a template SQLite database once with `flask db upgrade`; runs copy it.

    With ``--attach`` (the default) every sensor of the run is known and attached to a fridge
    of its own, as in a kitchen that has set up its units: each batch then also runs the alert
    evaluation of the units it touched, inside the measured path. (One sensor per fridge: the
    bench's device times are minutes older than its receive times, which beside each other on
    one fridge would make every device-timed reading a late one.)
    """
    template = workdir / "template.db"
    template_env = dict(env, BRIGADE_DATABASE_URL=f"sqlite:///{template}")
    subprocess.run([str(Path(sys.executable).with_name("flask")), "--app", "app", "db", "upgrade"],
                   cwd=ROOT, check=True, capture_output=True, env=template_env)
    if args.attach:
        samples = []
        for k in range(args.sensors):
            for i in range(k, k + 6 * args.sensors, args.sensors):
                topic, payload, is_reading = message(i, args.sensors, base, args.format)
                if is_reading:
                    samples.append((topic.decode(), payload.decode()))
                    break
        out = subprocess.run([sys.executable, "-c", SEED_KITCHEN], cwd=ROOT, env=template_env,
                             input=json.dumps(samples), capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"seeding the bench kitchen failed:\n{out.stderr}")
        if int(out.stdout.split()[-1]) != args.sensors:
            raise RuntimeError(f"expected {args.sensors} sensors, seeded {out.stdout}")
    return template


def count_readings(db: sqlite3.Connection) -> int:
    return db.execute("SELECT count(*) FROM readings").fetchone()[0]


def measure_ingest(args, workdir: Path, mosquitto: str, packets: list[Path], base: dt.datetime,
                   template: Path, env: dict, rep: int, client: str = "batching") -> dict:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    broker = Broker(workdir, mosquitto)
    database = workdir / f"ingest-{rep}.db"
    shutil.copy(template, database)
    run_env = dict(env, BRIGADE_DATABASE_URL=f"sqlite:///{database}",
                   BRIGADE_MQTT_HOST="127.0.0.1", BRIGADE_MQTT_PORT=str(broker.port),
                   BRIGADE_MQTT_CLIENT_ID=f"bench-ingest-{rep}-{os.getpid()}",
                   BRIGADE_MQTT_PROTOCOL=args.protocol, BRIGADE_MQTT_CLIENT=client)
    if args.batch_size:
        run_env["BRIGADE_INGEST_BATCH_SIZE"] = str(args.batch_size)
    if args.flush_ms:
        run_env["BRIGADE_INGEST_FLUSH_MS"] = str(args.flush_ms)
    command = ([sys.executable, args.launcher] if args.launcher else
               [str(Path(sys.executable).with_name("flask")), "--app", "app", "sensors", "ingest"])
    if args.profile:
        fmt = {".json": "speedscope", ".txt": "raw"}.get(Path(args.profile).suffix, "flamegraph")
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--threads", "-r",
                   "250", "-f", fmt, "-o", args.profile, "--"] + command
    log = open(workdir / f"ingest-{rep}.log", "wb")
    ingest = subprocess.Popen(command, cwd=ROOT, env=run_env, stdout=log, stderr=subprocess.STDOUT)
    db = sqlite3.connect(database)
    warm = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-warmup-{os.getpid()}")
    try:
        # Until ingest has subscribed the broker keeps nothing for it: repeat one warm-up reading
        # (same timestamp each time, so it is stored once) until it is committed.
        warm.connect("127.0.0.1", broker.port)
        warm.loop_start()
        warmup = json.dumps({"t": 4.0, "ts": (base - dt.timedelta(minutes=1)).isoformat()})
        deadline = time.monotonic() + 60
        while count_readings(db) < 1:
            if ingest.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest did not start (exit {ingest.poll()}); see "
                                   f"{workdir / f'ingest-{rep}.log'}")
            warm.publish("brigade/bench-warmup/reading", warmup, qos=1)
            time.sleep(0.2)
        warm.loop_stop()
        warm.disconnect()
        time.sleep(0.5)  # let the repeated warm-ups drain (they are duplicates)
        pid = ingest.pid if not args.profile else _child_pid(ingest.pid)
        pubs = Publishers(args, broker.port, packets)
        cpu0, threads0 = cpu_seconds(pid), thread_cpu_seconds(pid)
        goal = args.readings + 1
        pubs.go()
        # Cheap progress poll (max rowid: ids are gapless here), then the real COUNT.
        deadline = time.monotonic() + args.timeout
        while True:
            (top,) = db.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()
            if top >= goal and count_readings(db) >= goal:
                done = time.monotonic()
                break
            if ingest.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ingest stopped at {count_readings(db)} of {goal} readings")
            time.sleep(0.005)
        memory = proc_status(pid)
        cpu = cpu_seconds(pid) - cpu0
        threads = thread_cpu_seconds(pid)
        # Threads in creation order: the main thread, paho's network thread, the consumer.
        busy = {tid: round(threads[tid] - threads0.get(tid, 0.0), 2) for tid in sorted(threads)}
        pub = pubs.result()
        stored = count_readings(db)
        seconds = done - pub["first_send"]
        return {"rate": args.messages / seconds, "readings_rate": args.readings / seconds,
                "seconds": seconds, "stored": stored - 1,
                "publisher_rate": pub["rate"], "publisher_seconds": pub["seconds"],
                "rss_mib": memory["VmRSS"], "hwm_mib": memory["VmHWM"], "cpu_seconds": cpu,
                "thread_cpu_seconds": list(busy.values())}
    finally:
        db.close()
        stop(ingest, signal.SIGINT if args.profile else signal.SIGTERM, 60)
        broker.stop()
        log.close()
        # A measurement whose alert evaluation (or anything else) failed is no measurement.
        text = (workdir / f"ingest-{rep}.log").read_text(errors="replace")
        if "Traceback" in text:
            raise RuntimeError(f"ingest logged an error; see {workdir / f'ingest-{rep}.log'}:\n"
                               + text[text.index("Traceback"):][:3000])


def _child_pid(pid: int) -> int:
    """The Python process py-spy started (its only child)."""
    for _ in range(100):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("py-spy started no process")


def machine_facts(mosquitto: str) -> dict:
    import paho.mqtt
    import sqlalchemy
    version = subprocess.run([mosquitto, "-h"], capture_output=True, text=True).stdout.splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return {"nproc": len(os.sched_getaffinity(0)), "loadavg_at_start": os.getloadavg(), "cpu_model": cpu, "platform": platform.platform(),
            "python": platform.python_version(), "mosquitto": version[0] if version else "?",
            "sqlite": sqlite3.sqlite_version, "paho_mqtt": paho.mqtt.__version__,
            "sqlalchemy": sqlalchemy.__version__}


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark Brigade's MQTT ingest (committed to SQLite) against a bare paho "
                    "subscriber, both at QoS 1 behind the same raw-socket publisher, on a "
                    "throwaway Mosquitto.")
    parser.add_argument("-n", "--messages", type=int, default=100_000,
                        help="messages (= distinct readings) per measurement (default 100000)")
    parser.add_argument("-r", "--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("-p", "--publishers", type=int, default=1,
                        help="raw-socket publisher processes (default 1)")
    parser.add_argument("-b", "--batch-size", type=int, default=None,
                        help="BRIGADE_INGEST_BATCH_SIZE for ingest (default: Brigade's own default)")
    parser.add_argument("--flush-ms", type=int, default=None,
                        help="BRIGADE_INGEST_FLUSH_MS for ingest (default: Brigade's own default)")
    parser.add_argument("--protocol", choices=("both", "5", "3.1.1"), default="both",
                        help="MQTT version of the subscribers and ingest (default both: the "
                             "whole run on 3.1.1, then on 5, in one results file)")
    parser.add_argument("--sensors", type=int, default=50, help="distinct sensors (default 50)")
    parser.add_argument("--format", choices=("mix", "json", "bare"), default="mix",
                        help="mix: what real devices send, six vendors' formats with battery "
                             "and availability messages (default); json: Brigade JSON with "
                             "device timestamps; bare: bare numbers stored at their receive time")
    parser.add_argument("--no-attach", dest="attach", action="store_false",
                        help="leave the sensors unassigned (no alert evaluation after each "
                             "batch); by default every sensor is attached to a fridge")
    parser.add_argument("--window", type=int, default=20_000,
                        help="unacknowledged PUBLISH packets per publisher (default 20000)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per measurement")
    parser.add_argument("--only", choices=("publisher", "bare", "tuned", "ingest", "stock"),
                        action="append",
                        help="run only these measurements (repeatable; default all)")
    parser.add_argument("--profile", metavar="FILE",
                        help="run ingest under py-spy (pip install py-spy): FILE.svg flamegraph, "
                             ".json speedscope, .txt collapsed stacks")
    parser.add_argument("--launcher", metavar="SCRIPT",
                        help="run this Python script as the ingest process instead of `flask "
                             "sensors ingest` (same environment; for experiments)")
    parser.add_argument("--mosquitto", default=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    parser.add_argument("-o", "--output", type=Path, default=RESULTS,
                        help=f"JSON results (default {RESULTS.relative_to(ROOT)}); '-' for none")
    # Internal: this file is also each helper process.
    parser.add_argument("--role", choices=("publisher", "drain", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--packets", help=argparse.SUPPRESS)
    parser.add_argument("--client", choices=("paho", "batching"), default="paho",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        {"publisher": role_publisher, "drain": role_drain, "bare": role_bare}[args.role](args)
        return 0

    if args.protocol == "both":
        return _both_protocols(argv if argv is not None else sys.argv[1:], args)
    if args.window >= 65535:
        parser.error("--window must stay below 65535 (MQTT packet ids)")
    if not os.path.exists(args.mosquitto):
        parser.error(f"mosquitto not found at {args.mosquitto}")
    only = set(args.only or ("publisher", "bare", "tuned", "ingest", "stock"))
    workdir = Path(tempfile.mkdtemp(prefix="brigade-bench-ingest-"))
    env = dict(os.environ, BRIGADE_SECRET_KEY="bench", BRIGADE_AUDIT_KEY="bench",
               BRIGADE_INSTANCE_PATH=str(workdir / "instance"), BRIGADE_ENV="production")
    for key in ("BRIGADE_DATABASE_URL", "BRIGADE_MQTT_PROTOCOL", "BRIGADE_MQTT_SHARED_GROUP"):
        env.pop(key, None)
    facts = machine_facts(args.mosquitto)
    print(f"{facts['nproc']} CPU ({facts['cpu_model']}), Python {facts['python']}, "
          f"{facts['mosquitto']}, SQLite {facts['sqlite']}, paho {facts['paho_mqtt']}")
    if facts["loadavg_at_start"][0] > facts["nproc"] / 2:
        print(f"warning: load average {facts['loadavg_at_start'][0]:.1f} on {facts['nproc']} CPUs: "
              "other work is running; rates will be low and noisy", file=sys.stderr)
    print(f"MQTT {args.protocol}, {args.format} payloads, {args.messages} messages x {args.reps} reps, {args.publishers} publisher process(es), "
          f"{args.sensors} sensors, batch size {args.batch_size or 'default'}, "
          f"flush {args.flush_ms or 'default'} ms; work dir {workdir}")
    started = time.monotonic()
    base = fresh_base(args)
    template = prepare_database(workdir, env, args, base) if {"ingest", "stock"} & only else None
    packets, args.readings = write_packets(workdir, args, base)
    reps = []
    try:
        for rep in range(1, args.reps + 1):
            row: dict = {"rep": rep, "loadavg_1min": os.getloadavg()[0]}
            if "publisher" in only:
                row["publisher"] = measure_publisher(args, workdir, args.mosquitto, packets)
            if "bare" in only:
                row["bare"] = measure_bare(args, workdir, args.mosquitto, packets)
            if "tuned" in only:
                row["tuned"] = measure_bare(args, workdir, args.mosquitto, packets, "batching")
            if "ingest" in only:
                base = fresh_base(args)  # device times as recent as a kitchen's
                packets, _ = write_packets(workdir, args, base)
                row["ingest"] = measure_ingest(args, workdir, args.mosquitto, packets, base,
                                               template, env, rep)
                if row["ingest"]["stored"] != args.readings:
                    raise RuntimeError(f"stored {row['ingest']['stored']} of {args.readings}")
            if "stock" in only:
                base = fresh_base(args)  # device times as recent as a kitchen's
                packets, _ = write_packets(workdir, args, base)
                row["stock"] = measure_ingest(args, workdir, args.mosquitto, packets, base,
                                              template, env, 1000 + rep, client="stock")
                if row["stock"]["stored"] != args.readings:
                    raise RuntimeError(f"stored {row['stock']['stored']} of {args.readings}")
            if "bare" in row and "stock" in row:
                row["ratio_stock"] = row["stock"]["rate"] / row["bare"]["rate"]
            if "bare" in row and "ingest" in row:
                row["ratio"] = row["ingest"]["rate"] / row["bare"]["rate"]
            if "tuned" in row and "ingest" in row:
                row["ratio_tuned"] = row["ingest"]["rate"] / row["tuned"]["rate"]
            reps.append(row)
            print(_rep_line(row), flush=True)
    finally:
        if not args.profile:
            shutil.rmtree(workdir, ignore_errors=True)

    medians = {
        "publisher_rate": med([r.get("publisher", {}).get("rate") for r in reps]),
        "bare_rate": med([r.get("bare", {}).get("rate") for r in reps]),
        "tuned_rate": med([r.get("tuned", {}).get("rate") for r in reps]),
        "ingest_rate": med([r.get("ingest", {}).get("rate") for r in reps]),
        "stock_ingest_rate": med([r.get("stock", {}).get("rate") for r in reps]),
        "ingest_readings_rate": med([r.get("ingest", {}).get("readings_rate") for r in reps]),
        "stock_readings_rate": med([r.get("stock", {}).get("readings_rate") for r in reps]),
        "ratio_stock": med([r.get("ratio_stock") for r in reps]),
        "ratio": med([r.get("ratio") for r in reps]),
        "ratio_tuned": med([r.get("ratio_tuned") for r in reps]),
        "ingest_rss_mib": med([r.get("ingest", {}).get("rss_mib") for r in reps]),
        "ingest_hwm_mib": med([r.get("ingest", {}).get("hwm_mib") for r in reps]),
        "ingest_cpu_per_10k_readings_s": med([
            r["ingest"]["cpu_seconds"] / args.readings * 10_000 for r in reps if "ingest" in r]),
        "publisher_rate_during_bare": med([r.get("bare", {}).get("publisher_rate") for r in reps]),
        "publisher_rate_during_ingest": med([r.get("ingest", {}).get("publisher_rate")
                                             for r in reps]),
    }
    targets = {"ingest_rate_min": TARGET_RATE, "ratio_min": TARGET_RATIO,
               "ingest_rate_met": None if medians["ingest_readings_rate"] is None
               else medians["ingest_readings_rate"] >= TARGET_RATE,
               "ratio_met": None if medians["ratio"] is None else medians["ratio"] >= TARGET_RATIO}
    _print_table(medians, targets, args)
    print(f"total {time.monotonic() - started:.0f} s")
    if str(args.output) != "-":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        config = {k: getattr(args, k) for k in ("messages", "reps", "publishers", "batch_size",
                                                 "flush_ms", "protocol", "sensors", "window",
                                                 "launcher", "format", "attach",
                                                 "readings")}
        args.output.write_text(json.dumps({
            "benchmark": "bench/ingest.py", "when": dt.datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config, "machine": facts, "targets": targets, "medians": medians, "reps": reps,
            "notes": {
                "publisher": "raw-socket MQTT 3.1.1, pipelined QoS 1 PUBLISH, rate = N / (first "
                             "send .. last PUBACK); alone = into a broker whose only subscriber "
                             "drains at QoS 0",
                "bare": "paho 2 client, MQTT 5 persistent session, QoS 1 auto-ack, counts only; "
                        "N / (first .. last message)",
                "tuned": "as bare, on sensors.batching_client.BatchingClient (the ingest's client) "
                         "with manual acks sent 1,000 at a time",
                "ingest": "flask --app app sensors ingest on a fresh SQLite db; rate = messages "
                          "/ (publisher's first send .. COUNT(readings) = all readings committed), "
                          "readings_rate = readings / the same; with attach, every sensor is on "
                          "a fridge and each batch runs the alert evaluation",
                "mix": "format mix: six vendors' payloads in turn, battery in each that carries "
                       "it, 1 in 40 an availability message, 1 in 20 of ESPHome/Shelly Gen1 a "
                       "battery message; about 95 % of messages are readings",
                "stock": "the same ingest with BRIGADE_MQTT_CLIENT=stock: plain paho, one "
                         "ack() per message",
                "memory": "ingest process /proc status at the end: VmRSS, VmHWM (peak), MiB",
                "cpu": "CPU seconds while measuring; ingest thread_cpu_seconds in thread-id order "
                       "(main, paho network thread, consumer)"},
        }, indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


def _fmt(value, spec=",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _rep_line(row: dict) -> str:
    parts = [f"rep {row['rep']} (load {row['loadavg_1min']:.1f}):"]
    if "publisher" in row:
        parts.append(f"publisher {_fmt(row['publisher']['rate'])}/s")
    if "bare" in row:
        parts.append(f"bare {_fmt(row['bare']['rate'])}/s "
                     f"(publisher {_fmt(row['bare']['publisher_rate'])}/s, "
                     f"cpu {row['bare']['cpu_seconds']:.1f} s)")
    if "tuned" in row:
        parts.append(f"tuned {_fmt(row['tuned']['rate'])}/s "
                     f"(publisher {_fmt(row['tuned']['publisher_rate'])}/s, "
                     f"cpu {row['tuned']['cpu_seconds']:.1f} s)")
    if "ingest" in row:
        i = row["ingest"]
        threads = "+".join(f"{t:.1f}" for t in i["thread_cpu_seconds"] if t >= 0.05)
        parts.append(f"ingest {_fmt(i['rate'])}/s (publisher {_fmt(i['publisher_rate'])}/s, "
                     f"cpu {i['cpu_seconds']:.1f} s = {threads} by thread, rss {i['rss_mib']:.0f} MiB, "
                     f"peak {i['hwm_mib']:.0f} MiB)")
    if "stock" in row:
        parts.append(f"on stock paho {_fmt(row['stock']['rate'])}/s")
    if "ratio" in row:
        parts.append(f"ratio {row['ratio']:.0%}")
    if "ratio_tuned" in row:
        parts.append(f"(to tuned {row['ratio_tuned']:.0%})")
    return "  ".join(parts)


def _print_table(m: dict, targets: dict, args) -> None:
    ok = {True: "ok", False: "BELOW TARGET", None: ""}
    rows = [
        ("publisher alone (raw socket, QoS 1)", _fmt(m["publisher_rate"]), "msg/s", ""),
        ("(a) bare paho subscriber, QoS 1", _fmt(m["bare_rate"]), "msg/s", ""),
        ("(b) Brigade ingest, all committed", _fmt(m["ingest_rate"]), "msg/s", ""),
        ("    of which readings, SQLite", _fmt(m.get("ingest_readings_rate")), "readings/s",
         f">= {TARGET_RATE:,} {ok[targets['ingest_rate_met']]}"),
        ("ratio (b)/(a)", _fmt(m["ratio"], ".0%"), "", f">= {TARGET_RATIO:.0%} "
         f"{ok[targets['ratio_met']]}"),
        ("(c) ingest on stock paho, committed", _fmt(m.get("stock_ingest_rate")), "msg/s",
         ""),
        ("ratio (c)/(a)", _fmt(m.get("ratio_stock"), ".0%"), "", ""),
        ("(a') bare, on the ingest's paho subclass", _fmt(m["tuned_rate"]), "msg/s", ""),
        ("ratio (b)/(a') (cost of storing)", _fmt(m["ratio_tuned"], ".0%"), "", ""),
        ("ingest RSS at end", _fmt(m["ingest_rss_mib"], ".0f"), "MiB", ""),
        ("ingest peak RSS (VmHWM)", _fmt(m["ingest_hwm_mib"], ".0f"), "MiB", ""),
        ("ingest CPU per 10k readings", _fmt(m["ingest_cpu_per_10k_readings_s"], ".2f"), "s", ""),
    ]
    print(f"\nMQTT {args.protocol}, {args.format}: medians of {args.reps} ({args.messages:,} "
          f"messages, {args.readings:,} readings each)")
    for name, value, unit, target in rows:
        print(f"  {name:<38} {value:>10} {unit:<11} {target}")


def _both_protocols(argv: list[str], args) -> int:
    """The whole benchmark on MQTT 3.1.1, then on 5; one results file with both."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--protocol", "-o", "--output"):
            skip = True
            continue
        if arg.startswith(("--protocol=", "--output=")):
            continue
        rest.append(arg)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in ("3.1.1", "5"):
            out = Path(tmp) / f"{protocol}.json"
            main(rest + ["--protocol", protocol, "-o", str(out)])
            results[protocol] = json.loads(out.read_text())
    print("\nsummary (medians)               MQTT 3.1.1        MQTT 5")
    for key, name in (("bare_rate", "(a) bare stock paho, msg/s"),
                      ("ingest_rate", "(b) ingest, batching, msg/s"),
                      ("ingest_readings_rate", "    readings/s committed"),
                      ("stock_ingest_rate", "(c) ingest on stock paho"),
                      ("stock_readings_rate", "    readings/s committed"),
                      ("ratio", "(b)/(a)"), ("ratio_stock", "(c)/(a)")):
        spec = ".0%" if key.startswith("ratio") else ",.0f"
        print(f"  {name:<30} " + "".join(f"{_fmt(results[p]['medians'].get(key), spec):>13}"
                                         for p in ("3.1.1", "5")))
    if str(args.output) != "-":
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"benchmark": "bench/ingest.py", "protocols": results},
                                          indent=2) + "\n")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
