"""The calibration log: checks of sensors and probes, corrections applied to later readings."""
import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import select

from app import audit
from app.calibration.operations import (CalibrationRefused, NotAllowed, offset_history,
                                        record_check, subjects)
from app.models import Site, Staff, db, set_clock
from app.models.calibration import Calibration
from app.models.units import Unit
from sensors.models import Reading, Sensor
from sensors.store import Message, store_batch
from tests.factories import Kitchen, login_pin


def ingest(messages, **kwargs):
    """Store as ingest does: with the calibration log for readings from before an offset."""
    return store_batch(db.session, messages, offset_history=offset_history, **kwargs)


UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _client(app, kitchen, who):
    client = app.test_client()
    assert login_pin(client, kitchen[who], Kitchen.PINS[who]).status_code == 302
    return client


def _fridge_sensor(site_id, key_topic="brigade/pass/temperature", name="Pass fridge"):
    """A unit with one sensor attached (it appears through ingest, as a real one does)."""
    unit = Unit(site_id=site_id, name=name, kind="fridge", target_max_c=5.0, critical_max_c=8.0,
                min_c=None)
    db.session.add(unit)
    ingest([Message(key_topic, b"3.0", T0)])
    sensor = db.session.execute(select(Sensor).where(Sensor.unit_id.is_(None))).scalar_one()
    sensor.unit_id = unit.id
    db.session.commit()
    return sensor


def _reading_at(sensor_key_topic, value, at):
    ingest([Message(sensor_key_topic, str(value).encode(), at)])
    db.session.commit()
    return db.session.execute(select(Reading.temperature_c).where(Reading.received_at == at)).scalar_one()


def _people(kitchen):
    site = db.session.get(Site, kitchen["site"])
    return site, db.session.get(Staff, kitchen["cook"]), db.session.get(Staff, kitchen["chef"])


def test_a_correction_applies_to_later_readings_only_and_is_kept_in_the_log(ctx, kitchen):
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    before = _reading_at("brigade/pass/temperature", 4.0, T0 + dt.timedelta(minutes=1))
    # The probe reads 0.8 °C in ice water: 0.8 °C high. Within ±1 °C: passes, nothing to do.
    ok = record_check(db.session, site, cook, "dev1", sensor=sensor, method="ice_point",
                      reference_c=None, measured_c=0.8, tolerance_c=None, action="none",
                      now=T0 + dt.timedelta(minutes=2))
    assert (ok.reference_c, ok.error_c, ok.passed, ok.offset_after_c) == (0.0, 0.8, True, 0.0)
    # Now 1.5 °C high: out of tolerance, and an action is required.
    with pytest.raises(CalibrationRefused, match="1.5"):
        record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                     reference_c=None, measured_c=1.5, tolerance_c=None, action="none")
    # A cook may not change how a sensor's readings are stored; the head chef may.
    with pytest.raises(NotAllowed):
        record_check(db.session, site, cook, "dev1", sensor=sensor, method="ice_point",
                     reference_c=None, measured_c=1.5, tolerance_c=None, action="offset_applied")
    fixed = record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                         reference_c=None, measured_c=1.5, tolerance_c=None,
                         action="offset_applied", note="re-seated the probe",
                         now=T0 + dt.timedelta(minutes=5))
    db.session.commit()
    assert (fixed.passed, fixed.offset_before_c, fixed.offset_after_c) == (False, 0.0, -1.5)
    assert fixed.subject == "Pass fridge · brigade/pass"
    assert db.session.get(Sensor, sensor.id).offset_c == -1.5
    after = _reading_at("brigade/pass/temperature", 4.0, T0 + dt.timedelta(minutes=10))
    assert (before, after) == (4.0, 2.5)  # stored readings are never rewritten
    stored = db.session.execute(select(Reading.temperature_c, Reading.offset_c)
                                .order_by(Reading.measured_at)).all()
    assert stored[-2:] == [(4.0, 0.0), (2.5, -1.5)]  # each reading says what correction it got
    # A second check reads the corrected values: a further error adds to the offset.
    again = record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                         reference_c=None, measured_c=-1.25, tolerance_c=0.5,
                         action="offset_applied", now=T0 + dt.timedelta(minutes=20))
    db.session.commit()
    assert (again.offset_before_c, again.offset_after_c) == (-1.5, -0.25)
    # Every check is in the audit chain, and the chain verifies.
    count, problems = audit.verify(db.session)
    assert problems == [] and count >= 3
    chained = db.session.execute(select(Calibration.id).order_by(Calibration.id)).scalars().all()
    assert len(chained) == 3


def test_what_a_check_refuses(ctx, kitchen):
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    other_site = Site(name="Other", timezone="Europe/London", temp_unit="C")
    db.session.add(other_site)
    db.session.commit()
    other = _fridge_sensor(other_site.id, "brigade/other/temperature", "Their fridge")
    base = dict(method="ice_point", reference_c=None, measured_c=0.2, tolerance_c=None, action="none")
    cases = [
        (dict(sensor=None, probe=" "), "sensor or name a hand-held probe"),
        (dict(sensor=sensor, probe="Probe 1"), "one of them"),
        (dict(sensor=other), "not on one of this site's units"),
        (dict(sensor=sensor, method="guess"), "Unknown method"),
        (dict(sensor=sensor, method="reference"), "reference thermometer's reading"),
        (dict(sensor=sensor, method="boiling_point"), "boiling water"),
        (dict(sensor=sensor, measured_c=float("nan")), "numbers"),
        (dict(sensor=sensor, measured_c=400.0), "not plausible"),
        (dict(sensor=sensor, tolerance_c=20.0), "tolerance"),
        (dict(sensor=sensor, action="shrug"), "Unknown action"),
        (dict(probe="Probe 1", measured_c=2.0, action="offset_applied"), "hand-held probe"),
        (dict(sensor=sensor, measured_c=7.0, action="offset_applied"), "too large"),
    ]
    for overrides, message in cases:
        with pytest.raises(CalibrationRefused, match=message):
            record_check(db.session, site, chef, "dev1", **{**base, **overrides})
        db.session.rollback()
    assert db.session.execute(select(Calibration)).scalars().all() == []
    assert db.session.get(Sensor, sensor.id).offset_c == 0.0


def test_due_list_covers_every_sensor_on_a_unit_and_every_probe_in_use(ctx, kitchen):
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    now = T0 + dt.timedelta(days=40)
    due = {s.name: s.due for s in subjects(db.session, site, now, every_days=30)}
    assert due == {"brigade/pass": True}  # never checked
    record_check(db.session, site, cook, "dev1", probe="Probe 2 (blue)", method="boiling_point",
                 reference_c=None, measured_c=99.4, tolerance_c=None, action="none", now=T0)
    record_check(db.session, site, cook, "dev1", sensor=sensor, method="ice_point",
                 reference_c=None, measured_c=0.3, tolerance_c=None, action="none",
                 now=now - dt.timedelta(days=2))
    record_check(db.session, site, cook, "dev1", probe="Old probe", method="ice_point",
                 reference_c=None, measured_c=3.0, tolerance_c=None, action="removed", now=T0)
    db.session.commit()
    due = {s.name: s.due for s in subjects(db.session, site, now, every_days=30)}
    # The probe was checked 40 days ago: due again. A probe taken out of use drops off.
    assert due == {"brigade/pass": False, "Probe 2 (blue)": True}


def test_the_pages_record_a_check_in_the_sites_unit_and_export_it(app, kitchen):
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        site.temp_unit = "F"
        sensor_id = _fridge_sensor(site.id).id
    cook, chef = _client(app, kitchen, "cook"), _client(app, kitchen, "chef")
    page = cook.get("/calibration").get_data(as_text=True)
    assert "brigade/pass" in page and "never" in page
    form = cook.get(f"/calibration/new?sensor={sensor_id}").get_data(as_text=True)
    assert f'value="sensor:{sensor_id}" selected' in form
    assert 'value="37.4"' in form  # prefilled with Brigade's last reading (3.0 °C) in °F
    assert 'value="offset_applied"' not in form  # a cook is not offered the correction
    # 34.7 °F in ice water: 2.7 °F = 1.5 °C high, outside ±1.8 °F. A cook must act, not correct.
    data = {"subject": f"sensor:{sensor_id}", "method": "ice_point", "measured": "34,7",
            "tolerance": "1.8", "action": "none", "probe": "", "reference": "", "note": ""}
    refused = cook.post("/calibration", data=data)
    assert refused.status_code == 422 and "record what was done" in refused.get_data(as_text=True)
    assert cook.post("/calibration", data={**data, "action": "offset_applied"}).status_code == 403
    assert cook.post("/calibration", data={**data, "measured": "warm"}).status_code == 422
    done = chef.post("/calibration", data={**data, "action": "offset_applied",
                                           "note": "=HYPERLINK(\"http://x\")"})
    assert done.status_code == 302
    with app.app_context():
        check = db.session.execute(select(Calibration)).scalar_one()
        assert (check.measured_c, check.error_c, check.tolerance_c) == (1.5, 1.5, 1.0)
        assert db.session.get(Sensor, sensor_id).offset_c == -1.5
    log = chef.get("/calibration").get_data(as_text=True)
    assert "-2.7 °F" in log and "Chef Mei" in log
    assert cook.get("/calibration/export.csv").status_code == 403
    export = chef.get("/calibration/export.csv?from=2020-01-01&to=2200-01-01")
    assert export.status_code == 400  # more than three years
    export = chef.get("/calibration/export.csv")
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [(r["thermometer"], r["sensor_key"], r["measured_c"], r["action"], r["offset_after_c"],
             r["by"]) for r in rows] == \
        [("Pass fridge · brigade/pass", "brigade/pass", "1.5", "offset_applied", "-1.5", "Chef Mei")]
    assert rows[0]["note"] == "'=HYPERLINK(\"http://x\")"  # text, never a spreadsheet formula


def test_another_sites_sensor_is_not_found(app, kitchen):
    with app.app_context():
        other_site = Site(name="Other", timezone="Europe/London", temp_unit="C")
        db.session.add(other_site)
        db.session.commit()
        other_id = _fridge_sensor(other_site.id, "brigade/other/temperature", "Their fridge").id
    chef = _client(app, kitchen, "chef")
    assert chef.get(f"/calibration/new?sensor={other_id}").status_code == 404
    assert chef.get(f"/calibration?sensor={other_id}").status_code == 404
    data = {"subject": f"sensor:{other_id}", "method": "ice_point", "measured": "0.1",
            "tolerance": "", "action": "none", "probe": "", "reference": "", "note": ""}
    assert chef.post("/calibration", data=data).status_code == 404
    assert "brigade/other" not in chef.get("/calibration").get_data(as_text=True)
    set_clock(None)


def _brigade(sensor_topic_key, value, measured_at, received_at):
    return Message(f"{sensor_topic_key}/reading", json.dumps(
        {"t": value, "ts": measured_at.isoformat()}).encode(), received_at)


def test_a_late_reading_gets_the_correction_in_force_when_it_was_measured(ctx, kitchen):
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    for minutes, measured, action in ((10, 1.5, "offset_applied"), (30, 0.5, "offset_applied")):
        record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                     reference_c=None, measured_c=measured, tolerance_c=None, action=action,
                     now=T0 + dt.timedelta(minutes=minutes))
    db.session.commit()
    assert db.session.get(Sensor, sensor.id).offset_c == -2.0
    # A device's buffer arrives after both corrections, measured before, between and after.
    late = T0 + dt.timedelta(minutes=40)
    ingest([_brigade("brigade/pass", 4.0, T0 + dt.timedelta(minutes=m), late)
                             for m in (5, 20, 35)])
    db.session.commit()
    rows = db.session.execute(select(Reading.temperature_c, Reading.offset_c)
                              .where(Reading.received_at == late).order_by(Reading.measured_at)).all()
    assert rows == [(4.0, 0.0), (2.5, -1.5), (2.0, -2.0)]


def test_a_redelivery_after_a_correction_is_still_a_duplicate(ctx, kitchen):
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    first_at = T0 + dt.timedelta(minutes=1)
    session_key = "127.0.0.1:1883/brigade-ingest"
    ingest([Message("brigade/pass/temperature", b"4.0", first_at, mid=42, qos=1,
                                     session=session_key)])
    db.session.commit()
    record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                 reference_c=None, measured_c=1.5, tolerance_c=None, action="offset_applied",
                 now=first_at + dt.timedelta(minutes=1))
    db.session.commit()
    # The same message again (no device time; committed before a crash, never acknowledged).
    again = ingest([Message("brigade/pass/temperature", b"4.0",
                                             first_at + dt.timedelta(minutes=3), dup=True, mid=42,
                                             qos=1, session=session_key)])
    db.session.commit()
    assert (again.stored, again.duplicates) == (0, 1)


def test_replacing_a_sensor_resets_its_correction_and_makes_it_due(ctx, kitchen):
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                 reference_c=None, measured_c=1.5, tolerance_c=None, action="offset_applied", now=T0)
    db.session.commit()
    # Replacing resets the correction: a change to every reading after it, so not a cook's to make.
    with pytest.raises(NotAllowed):
        record_check(db.session, site, cook, "dev1", sensor=sensor, method="ice_point",
                     reference_c=None, measured_c=3.5, tolerance_c=None, action="replaced",
                     now=T0 + dt.timedelta(minutes=30))
    db.session.rollback()
    assert db.session.get(Sensor, sensor.id).offset_c == -1.5
    replaced = record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                            reference_c=None, measured_c=3.5, tolerance_c=None, action="replaced",
                            now=T0 + dt.timedelta(hours=1))
    db.session.commit()
    assert (replaced.offset_before_c, replaced.offset_after_c) == (-1.5, 0.0)
    assert db.session.get(Sensor, sensor.id).offset_c == 0.0
    [due] = [s for s in subjects(db.session, site, T0 + dt.timedelta(hours=2), 30) if s.sensor]
    assert due.due  # the new sensor needs its own check


def test_a_cook_reports_a_bad_thermometer_and_the_head_chef_is_alerted_until_it_is_dealt_with(ctx, kitchen):
    from app.models import Alert, AlertState
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    record_check(db.session, site, cook, "dev1", sensor=sensor, method="ice_point",
                 reference_c=None, measured_c=1.6, tolerance_c=None, action="reported", now=T0)
    db.session.commit()
    [alert] = db.session.execute(select(Alert)).scalars().all()
    assert (alert.kind, alert.detail["title"], alert.state.recovered_at) == \
        ("calibration", "Pass fridge · brigade/pass", None)
    assert [s.due for s in subjects(db.session, site, T0, 30) if s.sensor] == [True]
    record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                 reference_c=None, measured_c=1.6, tolerance_c=None, action="offset_applied",
                 now=T0 + dt.timedelta(minutes=10))
    db.session.commit()
    state = db.session.execute(select(AlertState)).scalar_one()
    assert state.recovered_at == T0 + dt.timedelta(minutes=10)  # dealt with; a person closes it


def test_probe_names_keep_one_spelling_and_retired_probes_leave_the_suggestions(ctx, kitchen):
    from app.calibration.operations import known_probes
    site, cook, chef = _people(kitchen)
    for name, action, measured in (("Probe 2 (blue)", "none", 0.2), ("probe  2 (BLUE)", "none", 0.4),
                                   ("Old probe", "none", 0.1), ("old probe", "removed", 3.0)):
        record_check(db.session, site, cook, "dev1", probe=name, method="ice_point",
                     reference_c=None, measured_c=measured, tolerance_c=None, action=action, now=T0)
    db.session.commit()
    probes = db.session.execute(select(Calibration.probe)).scalars().all()
    assert probes == ["Probe 2 (blue)", "Probe 2 (blue)", "Old probe", "Old probe"]
    assert known_probes(db.session, site) == ["Probe 2 (blue)"]
    with pytest.raises(CalibrationRefused, match="boiling water"):
        sensor = _fridge_sensor(site.id)
        record_check(db.session, site, cook, "dev1", sensor=sensor, method="boiling_point",
                     reference_c=None, measured_c=99.0, tolerance_c=None, action="none")


def test_audit_verify_catches_a_sensor_correction_changed_behind_the_apps_back(ctx, kitchen):
    from sqlalchemy import update
    site, cook, chef = _people(kitchen)
    sensor = _fridge_sensor(site.id)
    assert audit.verify(db.session)[1] == []  # never calibrated, no correction: fine
    record_check(db.session, site, chef, "dev1", sensor=sensor, method="ice_point",
                 reference_c=None, measured_c=1.5, tolerance_c=None, action="offset_applied", now=T0)
    db.session.commit()
    assert audit.verify(db.session)[1] == []
    db.session.execute(update(Sensor).values(offset_c=-3.0))  # someone edits the database
    db.session.commit()
    [problem] = audit.verify(db.session)[1]
    assert "brigade/pass" in str(problem) and "-1.5" in str(problem)
