"""Simulated fridges for the demo kitchen: realistic temperature traces over MQTT.

Two halves. The *traces* are pure functions of simulated time (seconds since the simulation
started), deterministic for a seed, so they are tested without a broker: a compressor's on/off
sawtooth with gaussian noise, door openings (short spikes), a freezer's defrost cycles and a
compressor that fails. The *devices* turn a trace sample into the MQTT messages a real device of
one format would publish (Zigbee2MQTT, Tasmota, Shelly Gen2, ESPHome, Brigade JSON), and
:class:`Simulator` publishes them at QoS 1, one MQTT client per device, each with its Last Will.

Device names are fixed, so a restarted simulation feeds the same sensors instead of new ones.
``speed`` compresses time: at 60 a simulated hour passes in a real minute. A device's own
timestamp (Shelly, Brigade JSON) is the real moment its sample was due, so stored readings
always run forward in real time whatever the speed.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from sensors.temperature import from_celsius

logger = logging.getLogger(__name__)

UTC = dt.timezone.utc
MINUTE, HOUR = 60.0, 3600.0


def _rng(seed: int, *key: object) -> random.Random:
    # Seeded from text: the same (seed, key) gives the same numbers in every process.
    return random.Random(":".join(str(part) for part in (seed, *key)))


# --- traces: temperature as a pure function of simulated time -------------------------------


@dataclass(frozen=True)
class Cycle:
    """The compressor's on/off cycle: warms from ``low`` to ``high`` while off, cools while on."""

    low: float
    high: float
    off_s: float = 14 * MINUTE
    on_s: float = 7 * MINUTE
    phase_s: float = 0.0

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def at(self, t: float) -> float:
        position = (t + self.phase_s) % (self.off_s + self.on_s)
        if position < self.off_s:
            return self.low + (self.high - self.low) * position / self.off_s
        return self.high - (self.high - self.low) * (position - self.off_s) / self.on_s


@dataclass(frozen=True)
class Doors:
    """Door openings: a few an hour, each a rise of ``rise_c`` over 1–3 minutes, then recovery."""

    per_hour: tuple[int, int] = (1, 4)
    rise_c: tuple[float, float] = (2.0, 4.0)
    open_s: tuple[float, float] = (1 * MINUTE, 3 * MINUTE)
    #: Time constant of the air cooling back once the door shuts.
    recover_s: float = 60.0

    def openings(self, seed: int, name: str, hour: int) -> list[tuple[float, float, float]]:
        """(start, duration, rise) of each opening that starts in this simulated hour."""
        rng = _rng(seed, name, "doors", hour)
        count = rng.randint(*self.per_hour)
        return sorted((hour * HOUR + rng.uniform(0, HOUR), rng.uniform(*self.open_s),
                       rng.uniform(*self.rise_c)) for _ in range(count))

    def effect(self, seed: int, name: str, t: float) -> float:
        """°C added by open doors at ``t``; exactly 0 once every opening has recovered.

        Openings close together do not add up: the air inside is at most room-warm once.
        """
        hour = math.floor(t / HOUR)
        total = 0.0
        for h in (hour - 1, hour):  # an opening late in the last hour may still be recovering
            for start, duration, rise in self.openings(seed, name, h):
                if t < start:
                    continue
                if t < start + duration:
                    total = max(total, rise * (t - start) / duration)
                elif t < start + duration + 5 * self.recover_s:
                    total = max(total, rise * math.exp(-(t - start - duration) / self.recover_s))
        return total


@dataclass(frozen=True)
class Defrost:
    """A freezer's defrost: every ``every_s`` the heater warms the coil to ~``peak_c``."""

    every_s: float = 6 * HOUR
    first_at_s: float = 90 * MINUTE
    heat_s: float = 20 * MINUTE
    ramp_s: float = 8 * MINUTE
    peak_c: float = -5.0
    #: Time constant of the pull-down after the heater stops.
    recover_s: float = 8 * MINUTE

    def start_before(self, t: float) -> float | None:
        """When the latest defrost at or before ``t`` started, or None before the first."""
        if t < self.first_at_s:
            return None
        return self.first_at_s + math.floor((t - self.first_at_s) / self.every_s) * self.every_s

    def effect(self, t: float, base_c: float) -> float:
        """°C added at ``t`` to a freezer whose cycle averages ``base_c``."""
        start = self.start_before(t)
        if start is None:
            return 0.0
        elapsed = t - start
        if elapsed < self.heat_s:
            share = min(1.0, elapsed / self.ramp_s)
        elif elapsed < self.heat_s + 6 * self.recover_s:
            share = math.exp(-(elapsed - self.heat_s) / self.recover_s)
        else:
            return 0.0
        return (self.peak_c - base_c) * share


@dataclass(frozen=True)
class Failure:
    """A compressor failing at ``at_s``: the unit warms towards the kitchen's air.

    With the defaults a fridge cycling 3–5 °C passes 5 °C within about 20 minutes and 8 °C
    within the hour. An engineer repairs it ``repaired_after_s`` later (None: never).
    """

    at_s: float
    ambient_c: float = 20.0
    base_c: float = 4.0
    climb_s: float = 150 * MINUTE
    repaired_after_s: float | None = 2 * HOUR
    pull_down_s: float = 20 * MINUTE

    def _drift(self, elapsed: float) -> float:
        return (self.ambient_c - self.base_c) * (1 - math.exp(-elapsed / self.climb_s))

    def effect(self, t: float) -> float:
        if t < self.at_s:
            return 0.0
        elapsed = t - self.at_s
        if self.repaired_after_s is None or elapsed < self.repaired_after_s:
            return self._drift(elapsed)
        since_repair = elapsed - self.repaired_after_s
        return self._drift(self.repaired_after_s) * math.exp(-since_repair / self.pull_down_s)


@dataclass(frozen=True)
class Trace:
    """One unit's air temperature: cycle + noise + doors + defrost + failure."""

    name: str
    cycle: Cycle
    noise_c: float = 0.08
    doors: Doors | None = None
    defrost: Defrost | None = None
    failure: Failure | None = None
    seed: int = 0

    def door_effect(self, t: float) -> float:
        return 0.0 if self.doors is None else self.doors.effect(self.seed, self.name, t)

    def temperature(self, t: float) -> float:
        """°C at simulated second ``t`` (deterministic for the seed)."""
        noise = _rng(self.seed, self.name, "noise", round(t, 3)).gauss(0, self.noise_c)
        value = self.cycle.at(t) + noise + self.door_effect(t)
        if self.defrost is not None:
            value += self.defrost.effect(t, self.cycle.mean)
        if self.failure is not None:
            value += self.failure.effect(t)
        return value


# --- devices: a sample as the MQTT messages of one payload format ----------------------------


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    retain: bool = False


@dataclass(frozen=True)
class Device:
    """A simulated device: its client id, its Last Will and what it publishes per sample."""

    unit: str  # the demo kitchen unit it sits in; "" for a probe not attached to one
    name: str  # the device's own name in its topics
    trace: Trace
    #: Simulated second after which it never publishes again (a dead sensor); None: never.
    silent_after_s: float | None = None
    #: Percent at the start; batteries lose a point every two simulated days.
    battery_pct: float | None = None

    format = "?"

    @property
    def client_id(self) -> str:
        return f"sim-{self.name}"

    @property
    def sensor_key(self) -> str:
        """The sensor key ingest gives this device's temperature."""
        raise NotImplementedError

    def publishing(self, t: float) -> bool:
        return self.silent_after_s is None or t < self.silent_after_s

    def battery(self, t: float) -> int | None:
        if self.battery_pct is None:
            return None
        return max(1, round(self.battery_pct - t / (2 * 86400)))

    def birth(self) -> Publish | None:
        """Published (retained) on every connect: the device is online."""
        return None

    def will(self) -> Publish | None:
        """The Last Will the broker publishes when the device vanishes."""
        return None

    def payloads(self, t: float, celsius: float, measured_at: dt.datetime) -> list[Publish]:
        raise NotImplementedError

    def messages(self, t: float, measured_at: dt.datetime) -> list[Publish]:
        """What the device publishes for its sample at simulated second ``t`` ([] once silent)."""
        if not self.publishing(t):
            return []
        return self.payloads(t, self.trace.temperature(t), measured_at)


class Zigbee2MQTTDevice(Device):
    """An Aqara temperature/humidity sensor behind a Zigbee2MQTT bridge (battery powered)."""

    format = "zigbee2mqtt"

    @property
    def client_id(self) -> str:
        return "zigbee2mqtt_sim"  # the bridge's client; availability is per device

    @property
    def sensor_key(self) -> str:
        return f"z2m/{self.name}"

    def birth(self) -> Publish:
        return Publish(f"zigbee2mqtt/{self.name}/availability", b'{"state":"online"}', retain=True)

    def will(self) -> Publish:
        return Publish(f"zigbee2mqtt/{self.name}/availability", b'{"state":"offline"}', retain=True)

    def payloads(self, t, celsius, measured_at):
        humidity = 55 + 8 * math.sin(t / HOUR)
        state = {"battery": self.battery(t), "humidity": round(humidity, 2), "linkquality": 116,
                 "temperature": round(celsius, 2), "voltage": 2985}
        return [Publish(f"zigbee2mqtt/{self.name}", json.dumps(state).encode())]


class TasmotaDevice(Device):
    """A Sonoff/ESP running Tasmota with one DS18B20 probe; LWT on ``tele/<topic>/LWT``."""

    format = "tasmota"
    probe_id = "3C01D607B4B2"

    @property
    def client_id(self) -> str:
        return "DVES_5A3C1F"

    @property
    def sensor_key(self) -> str:
        return f"tasmota/{self.name}/DS18B20/{self.probe_id}"

    def birth(self) -> Publish:
        return Publish(f"tele/{self.name}/LWT", b"Online", retain=True)

    def will(self) -> Publish:
        return Publish(f"tele/{self.name}/LWT", b"Offline", retain=True)

    def payloads(self, t, celsius, measured_at):
        # Tasmota's Time is the device's local time without an offset (SetOption52 off).
        local = measured_at.astimezone().replace(tzinfo=None, microsecond=0).isoformat()
        body = {"Time": local, "DS18B20": {"Id": self.probe_id, "Temperature": round(celsius, 1)},
                "TempUnit": "C"}
        compact = json.dumps(body, separators=(",", ":"))
        return [Publish(f"tele/{self.name}/SENSOR", compact.encode())]


class ShellyGen2Device(Device):
    """A Shelly Plus 1 with the Add-on and a DS18B20 (``temperature:100``), mains powered."""

    format = "shelly_gen2"

    @property
    def client_id(self) -> str:
        return self.name

    @property
    def sensor_key(self) -> str:
        return f"shelly/{self.name}/temperature:100"

    def birth(self) -> Publish:
        return Publish(f"{self.name}/online", b"true", retain=True)

    def will(self) -> Publish:
        return Publish(f"{self.name}/online", b"false", retain=True)

    def payloads(self, t, celsius, measured_at):
        frame = {"src": self.name, "dst": f"{self.name}/events", "method": "NotifyStatus",
                 "params": {"ts": round(measured_at.timestamp(), 3),
                            "temperature:100": {"id": 100, "tC": round(celsius, 1),
                                                "tF": round(from_celsius(celsius, "F"), 1)}}}
        return [Publish(f"{self.name}/events/rpc", json.dumps(frame).encode())]


class ESPHomeDevice(Device):
    """An ESP32 running ESPHome with a probe named ``<name>_temperature``."""

    format = "esphome"

    @property
    def client_id(self) -> str:
        return f"{self.name}-a4cf12"

    @property
    def object_id(self) -> str:
        return f"{self.name.replace('-', '_')}_temperature"

    @property
    def sensor_key(self) -> str:
        return f"esphome/{self.name}/sensor/{self.object_id}"

    def birth(self) -> Publish:
        return Publish(f"{self.name}/status", b"online", retain=True)

    def will(self) -> Publish:
        return Publish(f"{self.name}/status", b"offline", retain=True)

    def payloads(self, t, celsius, measured_at):
        return [Publish(f"{self.name}/sensor/{self.object_id}/state", f"{celsius:.1f}".encode())]


class BrigadeDevice(Device):
    """A probe speaking Brigade's own JSON (``brigade/<id>/reading``), battery powered."""

    format = "brigade"

    @property
    def sensor_key(self) -> str:
        return f"brigade/{self.name}"

    def birth(self) -> Publish:
        return Publish(f"brigade/{self.name}/status", b"online", retain=True)

    def will(self) -> Publish:
        return Publish(f"brigade/{self.name}/status", b"offline", retain=True)

    def payloads(self, t, celsius, measured_at):
        body = {"t": round(celsius, 2), "ts": measured_at.isoformat(timespec="milliseconds"),
                "battery": self.battery(t)}
        return [Publish(f"brigade/{self.name}/reading", json.dumps(body).encode())]


def fridge(name: str, seed: int, low: float, phase_min: float, **extra) -> Trace:
    return Trace(name, Cycle(low, low + 2.0, phase_s=phase_min * MINUTE), doors=Doors(), seed=seed,
                 **extra)


#: When the demo's cold-dish fridge fails, and how fast it warms: it passes its 8 °C critical
#: limit about 3 minutes after the start, so with the demo unit's one-minute critical delay
#: (app/demo.py) a newcomer sees a critical alert four to five minutes into `make run`.
DEMO_FAIL_AFTER_S = 1 * MINUTE
DEMO_CLIMB_S = 6 * MINUTE


def demo_devices(seed: int = 0, fail_after_s: float | None = DEMO_FAIL_AFTER_S,
                 silent_after_s: float | None = 45 * MINUTE) -> list[Device]:
    """The demo kitchen's units (app/demo.py) plus a spare probe, one payload format each."""
    failure = None if fail_after_s is None else Failure(at_s=fail_after_s, climb_s=DEMO_CLIMB_S)
    return [
        # The cold-dish fridge's compressor fails (and is repaired two hours later).
        Zigbee2MQTTDevice("Cold-dish fridge", "cold-dish-fridge",
                          fridge("cold-dish-fridge", seed, 3.0, 0, failure=failure),
                          battery_pct=87),
        # The prep fridge's sensor loses power: no more readings, and its LWT says Offline.
        TasmotaDevice("Prep fridge", "prep-fridge",
                      Trace("prep-fridge", Cycle(2.8, 4.8, off_s=12 * MINUTE, on_s=6 * MINUTE,
                                                 phase_s=5 * MINUTE),
                            doors=Doors(per_hour=(2, 5)), seed=seed),
                      silent_after_s=silent_after_s),
        ShellyGen2Device("Freezer", "shellyplus1-a8032ab1c2d4",
                         Trace("freezer", Cycle(-22.0, -19.0, off_s=18 * MINUTE, on_s=10 * MINUTE),
                               noise_c=0.1, doors=Doors(per_hour=(0, 2), rise_c=(1.0, 3.0)),
                               defrost=Defrost(), seed=seed)),
        ESPHomeDevice("Cold well", "cold-well",
                      Trace("cold-well", Cycle(3.0, 5.0, off_s=8 * MINUTE, on_s=5 * MINUTE),
                            doors=Doors(per_hour=(2, 4)), seed=seed)),
        # Not one of the demo's units: a new probe the admin has yet to attach.
        BrigadeDevice("", "drinks-fridge", fridge("drinks-fridge", seed, 3.2, 9), battery_pct=96),
    ]


# --- the simulator: devices on MQTT ----------------------------------------------------------


@dataclass(frozen=True)
class SimulatorSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    protocol: str = "3.1.1"  # "3.1.1" (what most devices speak) or "5"
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    speed: float = 1.0  # simulated seconds per real second
    interval_s: float = 30.0  # simulated seconds between a device's samples
    seconds: float | None = None  # stop after this many real seconds; None: until stopped
    seed: int = 0
    fail_after_s: float | None = DEMO_FAIL_AFTER_S
    silent_after_s: float | None = 45 * MINUTE


@dataclass
class _Connection:
    device: Device
    client: object
    connected: threading.Event = field(default_factory=threading.Event)
    last: object | None = None  # the last MQTTMessageInfo, to wait for its PUBACK
    dead: bool = False


class Simulator:
    """Publish every device's trace at QoS 1 until stopped (or ``settings.seconds`` pass)."""

    def __init__(self, settings: SimulatorSettings, devices: list[Device] | None = None):
        self.settings = settings
        self.devices = devices if devices is not None else demo_devices(
            settings.seed, settings.fail_after_s, settings.silent_after_s)
        self.published: Counter[str] = Counter()  # messages per payload format
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connections: list[_Connection] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a background thread."""
        self._thread = threading.Thread(target=self.run, name="brigade-simulator", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> None:
        """Connect every device, publish samples on schedule, disconnect; blocks."""
        s = self.settings
        logger.info("simulator: %s devices on %s:%s at %gx speed, a sample every %gs simulated",
                    len(self.devices), s.host, s.port, s.speed, s.interval_s)
        self._connections = [self._connect(device) for device in self.devices]
        try:
            deadline = time.monotonic() + 10
            for c in self._connections:
                if not c.connected.wait(max(0.0, deadline - time.monotonic())):
                    logger.warning("simulator: %s not connected yet; its messages are queued",
                                   c.device.client_id)
            self._loop()
        finally:
            self._disconnect()

    def _loop(self) -> None:
        s = self.settings
        started = time.monotonic()
        started_wall = dt.datetime.now(UTC)
        deadline = None if s.seconds is None else started + s.seconds
        # Devices sample out of step with each other, as real ones do.
        due = [index * s.interval_s / len(self.devices) for index in range(len(self.devices))]
        while not self._stop.is_set():
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            simulated = (now - started) * s.speed
            soonest = min(due)
            if soonest > simulated:
                wait = (soonest - simulated) / s.speed
                if deadline is not None:
                    wait = min(wait, deadline - now)
                self._stop.wait(max(wait, 0.0))
                continue
            for index, c in enumerate(self._connections):
                while due[index] <= simulated and not self._stop.is_set():
                    t = due[index]
                    # The device's clock: the real moment this sample was due.
                    self._sample(c, t, started_wall + dt.timedelta(seconds=t / s.speed))
                    due[index] += s.interval_s

    def _sample(self, c: _Connection, t: float, measured_at: dt.datetime) -> None:
        if c.dead:
            return
        if not c.device.publishing(t):
            self._go_silent(c)
            return
        for message in c.device.messages(t, measured_at):
            c.last = c.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
            self.published[c.device.format] += 1

    # --- MQTT --------------------------------------------------------------------------------

    def _connect(self, device: Device) -> _Connection:
        from sensors.mqtt_client import make_client
        s = self.settings
        client = make_client(s, device.client_id)
        connection = _Connection(device, client)
        will = device.will()
        if will is not None:
            client.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(min_delay=1, max_delay=10)

        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                logger.warning("simulator: %s refused: %s", device.client_id, reason_code)
                return
            birth = device.birth()
            if birth is not None:
                client.publish(birth.topic, birth.payload, qos=1, retain=birth.retain)
            connection.connected.set()

        client.on_connect = on_connect
        client.connect_async(s.host, s.port, keepalive=30)
        client.loop_start()
        return connection

    def _go_silent(self, c: _Connection) -> None:
        """Vanish like a device losing power: no DISCONNECT, so the broker sends the Will."""
        import socket
        c.dead = True
        logger.info("simulator: %s (%s) goes silent", c.device.name, c.device.format)
        c.client.loop_stop()
        sock = c.client.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _disconnect(self) -> None:
        deadline = time.monotonic() + 5
        for c in self._connections:
            if c.dead:
                continue
            if c.last is not None and c.connected.is_set():
                try:  # our messages reach the broker before we leave
                    c.last.wait_for_publish(max(0.1, deadline - time.monotonic()))
                except (RuntimeError, ValueError):
                    pass
            c.client.disconnect()
            c.client.loop_stop()
        logger.info("simulator: stopped after %s messages (%s)", sum(self.published.values()),
                    ", ".join(f"{k} {v}" for k, v in sorted(self.published.items())))

    def retained_topics(self) -> list[str]:
        """Topics the devices leave retained on the broker (births and wills)."""
        return sorted({m.topic for d in self.devices for m in (d.birth(), d.will()) if m})
