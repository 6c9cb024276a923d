"""The shared strict helpers: size, UTF-8, JSON, temperature, battery, timestamps, sensor ids."""

from dataclasses import FrozenInstanceError
from datetime import datetime, timedelta, timezone

import pytest

from sensors.formats import base
from sensors.formats.base import PayloadError, Reading

UTC = timezone.utc


def test_reading_is_frozen_with_optional_fields() -> None:
    reading = Reading("brigade/x")
    assert (reading.temperature_c, reading.measured_at, reading.battery_pct, reading.online) == (None,) * 4
    with pytest.raises(FrozenInstanceError):
        reading.sensor = "other"  # type: ignore[misc]


def test_payload_error_is_a_value_error_whose_str_is_the_reason() -> None:
    error = PayloadError("payload too large: 20000 bytes")
    assert isinstance(error, ValueError)
    assert str(error) == "payload too large: 20000 bytes"


# --- text / JSON ---


def test_text_accepts_the_size_limit_and_refuses_one_byte_more() -> None:
    assert base.text(b"1" * base.MAX_PAYLOAD_BYTES) == "1" * base.MAX_PAYLOAD_BYTES
    with pytest.raises(PayloadError, match=rf"^payload too large: {base.MAX_PAYLOAD_BYTES + 1} bytes$"):
        base.text(b"1" * (base.MAX_PAYLOAD_BYTES + 1))


@pytest.mark.parametrize("payload", [b"", b"   ", b"\n\t"])
def test_text_refuses_empty(payload: bytes) -> None:
    with pytest.raises(PayloadError, match="^empty payload$"):
        base.text(payload)


def test_text_refuses_bad_utf8_naming_the_offset() -> None:
    with pytest.raises(PayloadError, match="^not UTF-8: bad byte at offset 2$"):
        base.text(b"4.\xff")


def test_text_refuses_non_bytes() -> None:
    with pytest.raises(PayloadError, match="payload must be bytes"):
        base.text("4.2")  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", '{"t": NaN}'])
def test_json_refuses_nan_and_infinity(raw: str) -> None:
    with pytest.raises(PayloadError, match="not allowed"):
        base.loads(raw)


@pytest.mark.parametrize("raw", ["{", "4.2.1", "'single'", "[" * 50_000, "1" * 5000])
def test_json_errors_are_payload_errors(raw: str) -> None:
    with pytest.raises(PayloadError, match="^not JSON: "):
        base.loads(raw)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [("[1]", "array"), ('"x"', "string"), ("1", "number"), ("null", "null"), ("true", "boolean")],
)
def test_json_object_names_the_wrong_shape(raw: str, kind: str) -> None:
    with pytest.raises(PayloadError, match=f"^expected a JSON object, got {kind}$"):
        base.json_object(raw.encode())


# --- temperature / battery ---


@pytest.mark.parametrize(("value", "unit", "celsius"), [
    (4.2, "C", 4.2), (4, "C", 4.0), ("4.2", "C", 4.2), (" -18.5 ", "c", -18.5), ("1e1", "C", 10.0),
    (41, "F", 5.0), (39.7, "F", 4.28), (-0.4, "F", -18.0), (32, "F", 0.0),
    (-90, "C", -90.0), (150, "C", 150.0),
])  # fmt: skip
def test_temperature_accepts_and_converts(value: object, unit: str, celsius: float) -> None:
    assert base.temperature(value, unit) == celsius


@pytest.mark.parametrize(
    "value", [True, False, None, "nan", "NaN", "inf", "-Infinity", "1_000", "4,2", "", "٣", [4.2], {"t": 1}]
)
def test_temperature_refuses_non_numbers(value: object) -> None:
    with pytest.raises(PayloadError, match="^temperature is not a number: "):
        base.temperature(value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), "1e400", "9" * 400])
def test_temperature_refuses_non_finite(value: object) -> None:
    with pytest.raises(PayloadError, match="^temperature is not finite: "):
        base.temperature(value)


def test_temperature_refuses_an_integer_too_big_for_a_float() -> None:
    with pytest.raises(PayloadError, match="out of range"):
        base.temperature(10**400)


@pytest.mark.parametrize(
    ("value", "unit"), [(-300, "C"), (1000, "C"), (-90.01, "C"), (150.01, "C"), (400, "F"), (-200, "F")]
)
def test_temperature_refuses_implausible_values_naming_them(value: float, unit: str) -> None:
    with pytest.raises(
        PayloadError, match=rf"^implausible temperature: {value:g} °{unit} \(accepted -90 to 150 °C\)$"
    ):
        base.temperature(value, unit)


@pytest.mark.parametrize("unit", ["K", "", None, 1, "celsius"])
def test_temperature_refuses_unknown_units(unit: object) -> None:
    with pytest.raises(PayloadError, match="^unknown temperature unit: "):
        base.temperature(4.2, unit)


@pytest.mark.parametrize(("value", "level"), [(0, 0.0), (100, 100.0), ("87", 87.0), (55.5, 55.5)])
def test_battery_accepts_0_to_100(value: object, level: float) -> None:
    assert base.battery(value) == level


@pytest.mark.parametrize("value", [-1, 100.5, 250, True, "full", float("nan")])
def test_battery_refuses_the_rest(value: object) -> None:
    with pytest.raises(PayloadError, match="^battery "):
        base.battery(value)


# --- timestamps ---


@pytest.mark.parametrize(("value", "moment"), [
    ("2026-11-27T10:00:00Z", datetime(2026, 11, 27, 10, tzinfo=UTC)),
    ("2026-11-27T11:00:00+01:00", datetime(2026, 11, 27, 10, tzinfo=UTC)),
    ("2026-11-27T05:00:00.250-05:00", datetime(2026, 11, 27, 10, 0, 0, 250000, tzinfo=UTC)),
    (1795773600, datetime(2026, 11, 27, 10, tzinfo=UTC)),
    (1795773600.5, datetime(2026, 11, 27, 10, 0, 0, 500000, tzinfo=UTC)),
    (1795773600123, datetime(2026, 11, 27, 10, 0, 0, 123000, tzinfo=UTC)),  # epoch milliseconds
])  # fmt: skip
def test_timestamp_gives_aware_utc(value: object, moment: datetime) -> None:
    parsed = base.timestamp(value, naive="reject")
    assert parsed == moment
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_naive_timestamp_is_none_or_refused_per_format() -> None:
    assert base.timestamp("2021-01-02T09:09:44", naive="none") is None
    with pytest.raises(PayloadError, match="^timestamp needs a UTC offset: "):
        base.timestamp("2021-01-02T09:09:44", naive="reject")


@pytest.mark.parametrize("value", [0, 1.33, 946684799, "1970-01-01T00:00:12+00:00"])
def test_timestamp_from_an_unset_clock_is_none(value: object) -> None:
    assert base.timestamp(value, naive="reject") is None


@pytest.mark.parametrize("value", [
    "yesterday", "2026-13-01T00:00:00Z", "2026-11-27T10:00:00+25:00", "x" * 100,
    True, None, [1], float("nan"), float("inf"), 1e300, 10**400, "0001-01-01T00:00:00+01:00",
])  # fmt: skip
def test_bad_timestamps_are_payload_errors(value: object) -> None:
    with pytest.raises(PayloadError, match="timestamp"):
        base.timestamp(value, naive="reject")


# --- sensor ids, availability, show ---


def test_sensor_id_joins_and_validates() -> None:
    assert base.sensor_id("z2m", "kitchen/fridge") == "z2m/kitchen/fridge"
    with pytest.raises(PayloadError, match="empty device name"):
        base.sensor_id("tasmota", "")
    with pytest.raises(PayloadError, match="control characters"):
        base.sensor_id("z2m", "fri\x00dge")
    with pytest.raises(PayloadError, match="too long"):
        base.sensor_id("z2m", "x" * 300)


@pytest.mark.parametrize(("payload", "online"), [(b"Online", True), (b"offline\n", False), (b"ONLINE", True)])
def test_availability_words(payload: bytes, online: bool) -> None:
    assert base.availability(payload, "Online", "Offline") is online


def test_availability_refuses_other_words() -> None:
    with pytest.raises(PayloadError, match="^expected 'true' or 'false', got 'maybe'$"):
        base.availability(b"maybe", "true", "false")


def test_show_keeps_reasons_short_even_for_huge_values() -> None:
    assert len(base.show("x" * 1000)) == 40
    assert base.show(10**5000) == "<int too long to show>"
