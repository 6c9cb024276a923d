"""The Reading every format produces, the one error it raises, and strict helpers they share.

Every parser is a pure ``parse(topic: str, payload: bytes) -> list[Reading]`` that raises only
:class:`PayloadError`. ``[]`` means "a topic we know, carrying nothing to store" (a Tasmota
``STATE``, a Zigbee2MQTT bridge message); a :class:`PayloadError` means "dead-letter this, and show
the admin ``str(error)``".

Sensor ids are source-qualified and stable: ``brigade/<id>``, ``tasmota/<topic>/<probe>``,
``z2m/<friendly_name>``, ``shelly/<device>[/<component>]``, ``esphome/<prefix>/sensor/<name>``.
An availability reading is about a whole device, so its sensor id is the device's id
(``tasmota/<topic>``, ``esphome/<prefix>``, ...), a prefix of that device's probe ids.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from sensors.temperature import to_celsius

MAX_PAYLOAD_BYTES = 16 * 1024
MIN_TEMPERATURE_C = -90.0  # colder than any freezer; below this a probe is broken or unplugged
MAX_TEMPERATURE_C = 150.0  # hotter than any oven probe we expect; above this it is garbage
MAX_SENSOR_ID_LENGTH = 200
# A device timestamp before 2000 means its clock was never set (an ESP without NTP counts from
# 1970); ingest should then use the receive time, so such timestamps become None.
CLOCK_SET_AFTER = datetime(2000, 1, 1, tzinfo=timezone.utc)
# Epoch values above this are milliseconds: 1e11 seconds is the year 5138.
_EPOCH_MS_ABOVE = 1e11
# ASCII only: Python's float() would also accept "1_000", "nan", "inf" and non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_MAX_TIMESTAMP_CHARS = 64


class PayloadError(ValueError):
    """A payload that cannot become readings; str() is the reason shown to the admin."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One observation from one sensor; fields a message does not carry stay None."""

    sensor: str  # stable source-qualified id, e.g. "tasmota/kitchen1/DS18B20-1", "z2m/fridge_door"
    temperature_c: float | None = None  # always °C, converted from °F when the device reports °F
    measured_at: datetime | None = None  # device's own timestamp, aware UTC; None = use receive time
    battery_pct: float | None = None
    online: bool | None = None  # availability / LWT messages


def show(value: object, limit: int = 40) -> str:
    """repr() cut short, so an admin-facing reason stays one readable line."""
    try:
        text = repr(value)
    except ValueError:  # an int too long to print (int_max_str_digits)
        text = f"<{type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unknown_topic(topic: object) -> PayloadError:
    """The error for a topic no format (or not this format) understands."""
    return PayloadError(f"unknown topic: {show(topic, 80)}")


def text(payload: bytes) -> str:
    """The payload as text: size-checked, non-empty, strictly UTF-8."""
    if not isinstance(payload, (bytes, bytearray)):
        raise PayloadError(f"payload must be bytes, not {type(payload).__name__}")
    # Checked before decoding so a flood of huge messages costs nothing to refuse.
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload too large: {len(payload)} bytes")
    try:
        decoded = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"not UTF-8: bad byte at offset {exc.start}") from None
    if not decoded.strip():
        raise PayloadError("empty payload")
    return decoded


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity by default; they are not JSON and never a reading.
    raise PayloadError(f"not JSON: {name} is not allowed")


def loads(raw: str) -> Any:
    """Parse JSON text strictly (no NaN/Infinity)."""
    try:
        # One decoder for all calls: json.loads builds a new one per call when given options.
        return _DECODER.decode(raw)
    except PayloadError:
        raise
    # ValueError covers JSONDecodeError and over-long integers; RecursionError deep nesting.
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"not JSON: {str(exc)[:80]}") from None


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def json_value(payload: bytes) -> Any:
    """The payload parsed as JSON, any shape."""
    return loads(text(payload))


def kind(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def json_object(payload: bytes) -> dict[str, Any]:
    """The payload parsed as a JSON object."""
    value = json_value(payload)
    if not isinstance(value, dict):
        raise PayloadError(f"expected a JSON object, got {kind(value)}")
    return value


def number(value: object, what: str) -> float:
    """A finite float from a JSON number or a decimal string; booleans, NaN and ±inf refused."""
    if isinstance(value, bool):  # bool is an int subclass; True is not 1 °C
        raise PayloadError(f"{what} is not a number: {show(value)}")
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise PayloadError(f"{what} is out of range: {show(value)}") from None
    elif isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        result = float(value.strip())
    else:
        raise PayloadError(f"{what} is not a number: {show(value)}")
    if not math.isfinite(result):
        raise PayloadError(f"{what} is not finite: {show(value)}")
    return result


def temperature(value: object, unit: object = "C") -> float:
    """A plausible temperature in °C from a value in ``unit`` ("C" or "F")."""
    measured = number(value, "temperature")
    if not isinstance(unit, str) or unit.upper() not in ("C", "F"):
        raise PayloadError(f"unknown temperature unit: {show(unit)}")
    if unit.upper() == "F":
        # Devices report 0.1 °F; more than two decimals after conversion is noise.
        celsius = round(to_celsius(measured, "F"), 2)
    else:
        celsius = measured
    if not MIN_TEMPERATURE_C <= celsius <= MAX_TEMPERATURE_C:
        raise PayloadError(
            f"implausible temperature: {measured:g} °{unit.upper()}"
            f" (accepted {MIN_TEMPERATURE_C:g} to {MAX_TEMPERATURE_C:g} °C)"
        )
    return celsius


def battery(value: object) -> float:
    """A battery level in percent, 0–100."""
    level = number(value, "battery")
    if not 0.0 <= level <= 100.0:
        raise PayloadError(f"battery out of range 0–100: {show(value)}")
    return level


def availability(payload: bytes, online: str, offline: str) -> bool:
    """True/False from a plain-text availability payload with the vendor's two words."""
    word = text(payload).strip()
    if word.lower() == online.lower():
        return True
    if word.lower() == offline.lower():
        return False
    raise PayloadError(f"expected {online!r} or {offline!r}, got {show(word)}")


def timestamp(value: object, *, naive: Literal["none", "reject"]) -> datetime | None:
    """An aware UTC datetime from ISO 8601 text or epoch seconds/milliseconds.

    ``naive`` says what a timestamp without an offset means for the calling format: "none" when
    it is device-local time we cannot place (becomes None), "reject" when the format requires an
    offset. A timestamp before :data:`CLOCK_SET_AFTER` is an unset device clock and becomes None.
    """
    if isinstance(value, bool):
        raise PayloadError(f"timestamp is not a time: {show(value)}")
    if isinstance(value, (int, float)):
        moment = _from_epoch(value)
    elif isinstance(value, str):
        parsed = _from_iso(value, naive)
        if parsed is None:
            return None
        moment = parsed
    else:
        raise PayloadError(f"timestamp is not a time: {show(value)}")
    return moment if moment >= CLOCK_SET_AFTER else None


def _from_epoch(value: int | float) -> datetime:
    seconds = number(value, "timestamp")
    if abs(seconds) > _EPOCH_MS_ABOVE:
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"timestamp out of range: {show(value)}") from None


def _from_iso(value: str, naive: Literal["none", "reject"]) -> datetime | None:
    if len(value) > _MAX_TIMESTAMP_CHARS:
        raise PayloadError(f"bad timestamp: {show(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"bad timestamp: {show(value)}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        if naive == "reject":
            raise PayloadError(f"timestamp needs a UTC offset: {show(value)}")
        return None
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # e.g. year 1 shifted before the first representable day
        raise PayloadError(f"timestamp out of range: {show(value)}") from None


def sensor_id(*parts: str) -> str:
    """Join topic-derived parts into a sensor id, refusing empty parts and control characters."""
    if not all(parts):
        raise PayloadError("empty device name in topic")
    joined = "/".join(parts)
    if len(joined) > MAX_SENSOR_ID_LENGTH:
        raise PayloadError(f"sensor id too long: {len(joined)} characters")
    # Control characters and lone surrogates would break logs and the database encoding.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in joined):
        raise PayloadError(f"sensor id has control characters: {show(joined, 80)}")
    return joined
