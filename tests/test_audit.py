"""The audit chain: every record is vouched for, and tampering behind the app's back shows."""
import datetime as dt

import pytest
from sqlalchemy import text

from app.audit import verify
from app.checklists.definitions import current_definitions
from app.checklists.operations import open_run, record_answer, submit_run
from app.checklists.schedules import slots_for_day
from app.models import AuditRecord, Site, Staff, db
from app.timers.operations import record_outcome, start_timer
from tests.factories import at_local

DAY = dt.date(2026, 11, 27)


@pytest.fixture
def records(app, kitchen):
    """A submitted run, a photo-less correction trail and a settled timer."""
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        cook = db.session.get(Staff, kitchen["cook"])
        definition = current_definitions(db.session)[0]
        slot = slots_for_day(definition.schedules, DAY, site.timezone)[0]
        run = open_run(db.session, site, definition.key, slot, cook, "dev1", now=at_local(DAY, "11:05"))
        for item in run.definition.items:
            value = {"passfail": "pass", "temperature": "3.2", "time": "11:30"}.get(item.kind)
            if value:
                record_answer(db.session, run, item, cook, "dev1", value=value)
        submit_run(db.session, run, cook, "dev1")
        timer = start_timer(db.session, site, cook, "dev1", "plated", "Cold noodles")
        record_outcome(db.session, timer, cook, "dev1", "served")
        db.session.commit()
        # Links before the run's: the loaded checklist definitions are chained too.
        offset = db.session.scalar(db.select(AuditRecord.seq).where(
            AuditRecord.entity == "runs", AuditRecord.entity_id == run.id)) - 1
        return {"run": run.id, "seq": {f"s{n}": offset + n for n in range(1, 10)}}


def _run_sql(app, sql):
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text(sql))


def test_an_untouched_chain_verifies(app, records, runner):
    with app.app_context():
        count, problems = verify(db.session)
    assert problems == [] and count >= 14
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and f"{count} links and 0 sealed hours checked: intact" in result.output


@pytest.mark.parametrize("tamper,expected", [
    ("UPDATE answers SET value = 'fail', outcome = 'fail' WHERE id = 2", "answers 2: altered"),
    ("UPDATE answers SET recorded_at = recorded_at - interval '1 hour' WHERE id = 3"
     if False else "UPDATE submissions SET submitted_by_id = 1 WHERE id = 1", "submissions 1: altered"),
    ("DELETE FROM timer_outcomes WHERE id = 1", "timer_outcomes 1: removed"),
    ("UPDATE hold_timers SET dish = 'Fresh noodles' WHERE id = 1", "hold_timers 1: altered"),
    ("INSERT INTO timer_outcomes (id, timer_id, outcome, recorded_by_id, recorded_at) "
     "VALUES (99, 1, 'discarded', 2, '2026-11-27 12:00:00')", "timer_outcomes 99: is not in the audit chain"),
    ("UPDATE audit_records SET payload = replace(payload, 'pass', 'fail') WHERE seq = {s3}",
     "audit record #{s3} (answers 2): altered"),
    ("DELETE FROM audit_records WHERE seq = {s4}", "audit records #{s4}–#{s4}: missing"),
])
def test_tampering_is_reported_naming_the_record(app, records, runner, tamper, expected):
    _run_sql(app, tamper.format(**records["seq"]))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert expected.format(**records["seq"]) in result.output, result.output


def test_removing_the_newest_links_is_reported(app, records, runner):
    _run_sql(app, "DELETE FROM audit_records WHERE seq = (SELECT max(seq) FROM audit_records)")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "links removed from the end" in result.output


def test_a_head_whose_hash_is_not_the_last_links_says_so(app, records, runner):
    _run_sql(app, "UPDATE audit_head SET hash = '%s'" % ("f" * 64))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "its hash is not that of the last link" in result.output, result.output
    assert "removed from the end" not in result.output


def test_a_forged_link_without_the_key_is_caught(app, records):
    """Recomputing a link's hash needs the key: a plain sha256 forgery fails."""
    import hashlib
    with app.app_context():
        row = db.session.execute(text("SELECT seq, payload FROM audit_records WHERE seq = {s5}".format(**records["seq"]))).one()
        forged = hashlib.sha256(row.payload.replace("pass", "fail").encode()).hexdigest()
    _run_sql(app, f"UPDATE audit_records SET hash = '{forged}' WHERE seq = {records['seq']['s5']}")
    with app.app_context():
        _, problems = verify(db.session)
    assert any(f"#{records['seq']['s5']} " in str(p) and "altered" in str(p) for p in problems)
    assert any(f"#{records['seq']['s6']} " in str(p) and "does not follow" in str(p) for p in problems)


def test_a_different_key_does_not_verify(app, records):
    with app.app_context():
        _, problems = verify(db.session, key=b"someone else's key")
    assert problems and all("altered" in str(p) for p in problems)


def test_concurrent_appends_keep_one_chain(app, kitchen):
    """Tablets answering at once never fork the chain (SQLite write lock / PG row lock)."""
    import threading
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        definition = current_definitions(db.session)[0]
        slot = slots_for_day(definition.schedules, DAY, site.timezone)[0]
        cook = db.session.get(Staff, kitchen["cook"])
        links_before = db.session.scalar(db.select(db.func.count()).select_from(AuditRecord))
        run = open_run(db.session, site, definition.key, slot, cook, None, now=at_local(DAY, "11:01"))
        db.session.commit()
        run_id = run.id
        item_ids = [i.id for i in run.definition.items if i.kind == "passfail"]
    errors = []

    def tablet(n):
        from app.models import ChecklistItem, Run
        try:
            with app.app_context():
                for k in range(6):
                    r = db.session.get(Run, run_id)
                    item = db.session.get(ChecklistItem, item_ids[(n + k) % len(item_ids)])
                    person = db.session.get(Staff, kitchen["cook"])
                    record_answer(db.session, r, item, person, None,
                                  value="pass" if (n + k) % 2 else "fail", note=f"t{n}-{k}")
                    db.session.commit()
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(repr(exc))

    threads = [threading.Thread(target=tablet, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Tablets answering the same items at the same instant are applied one after
    # another: each answer supersedes the one before it, none is lost.
    assert errors == []
    with app.app_context():
        count, problems = verify(db.session)
        supersedes = db.session.execute(text("SELECT supersedes_id FROM answers")).scalars().all()
    assert problems == []
    assert count == links_before + 1 + 36
    chained = [s for s in supersedes if s is not None]
    assert len(chained) == 36 - len(item_ids) and len(set(chained)) == len(chained)


def test_a_recorded_head_catches_links_removed_with_the_head_row_rewound(app, records, runner):
    """Deleting the newest links and rewinding the head row leaves a consistent chain; an
    anchor kept outside the database (``flask audit head``) still shows it."""
    anchor = runner.invoke(args=["audit", "head"]).output.strip()
    seq = int(anchor.split(":")[0])
    assert runner.invoke(args=["audit", "verify", "--expect", anchor]).exit_code == 0
    with app.app_context():
        previous = db.session.execute(text(f"SELECT hash FROM audit_records WHERE seq = {seq - 1}")).scalar_one()
    _run_sql(app, f"DELETE FROM audit_records WHERE seq = {seq}")
    _run_sql(app, "DELETE FROM timer_outcomes WHERE id = 1")  # the record that link vouched for
    _run_sql(app, f"UPDATE audit_head SET seq = {seq - 1}, hash = '{previous}'")
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0  # the chain alone looks fine
    result = runner.invoke(args=["audit", "verify", "--expect", anchor])
    assert result.exit_code == 1 and f"audit record #{seq}: does not match" in result.output
    bad = runner.invoke(args=["audit", "verify", "--expect", "12:nothex"])
    assert bad.exit_code == 2 and "SEQ:HASH" in bad.output


@pytest.mark.parametrize("tamper", [
    "UPDATE audit_records SET at = '2026-11-27 09:00:00' WHERE seq = {s3}",
    "UPDATE audit_records SET actor_id = (SELECT max(id) FROM staff) WHERE seq = {s3}",
    "UPDATE audit_records SET device_id = NULL WHERE seq = {s3}",
    "UPDATE audit_records SET context = '{{}}' WHERE seq = {s3}",
])
def test_a_links_time_actor_and_device_are_under_its_hash(app, records, runner, tamper):
    """A link's own time, actor and device were outside the HMAC: rewriting who did a record,
    when, or on which tablet passed verify."""
    _run_sql(app, tamper.format(**records["seq"]))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "audit record #{s3} (answers 2): altered".format(**records["seq"]) in result.output, \
        result.output


def _v1_link(app, seq, prev):
    """Rewrite link ``seq`` as a format 1 link (its time, actor and device unsealed), as
    every link was written before format 2; returns its new hash."""
    from app.audit import link_hash
    from app.models import AuditRecord
    with app.app_context():
        link = db.session.get(AuditRecord, seq)
        digest = link_hash(app.config["BRIGADE_AUDIT_KEY"].encode(), seq, prev, link.action,
                           link.entity, link.entity_id, link.payload)
    _run_sql(app, f"UPDATE audit_records SET format = 1, context = NULL, hash = '{digest}', "
                  f"prev_hash = '{prev}' WHERE seq = {seq}")
    return digest


def test_a_chain_begun_in_format_1_still_verifies_and_goes_on_in_format_2(app, records, runner):
    """The migration path: links written before format 2 verify the old way, the first new
    link follows the last old one, and a format 1 link after format 2 ones is named."""
    from app.audit import GENESIS
    from app.models import AuditRecord
    with app.app_context():
        count = db.session.scalar(db.select(db.func.count()).select_from(AuditRecord))
    prev = GENESIS
    for seq in range(1, count + 1):  # an old chain: every link format 1
        prev = _v1_link(app, seq, prev)
    _run_sql(app, f"UPDATE audit_head SET hash = '{prev}'")
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    with app.app_context():  # the app goes on appending, in format 2, after the old links
        from app.timers.operations import record_outcome, start_timer
        site, cook = db.session.get(Site, 1), db.session.query(Staff).filter_by(name="Cook Sam").one()
        timer = start_timer(db.session, site, cook, "dev1", "plated", "Rice")
        record_outcome(db.session, timer, cook, "dev1", "discarded")
        db.session.commit()
        formats = db.session.execute(db.select(AuditRecord.format).order_by(AuditRecord.seq)).scalars().all()
    assert formats == [1] * count + [2, 2]
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    # Moving a format 2 link back to format 1 (with the key in hand) is still named.
    _v1_link(app, count + 2, _hash_of(app, count + 1))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"audit record #{count + 2} (timer_outcomes 2): altered: format 1 after format 2" \
        in result.output, result.output


def _hash_of(app, seq):
    with app.app_context():
        return db.session.execute(text(f"SELECT hash FROM audit_records WHERE seq = {seq}")).scalar_one()


def _chain_of_alerts(app, site_id: int, count: int) -> None:
    """``count`` alerts and their links, written in bulk as append() would have chained them."""
    from app.audit import LINK_FORMAT, canonical, ensure_head, link_hash
    from app.models import Alert, AuditHead, AuditRecord
    with app.app_context():
        key = app.config["BRIGADE_AUDIT_KEY"].encode()
        ensure_head(db.session)
        head = db.session.get(AuditHead, 1)
        seq, prev = head.seq, head.hash
        first = (db.session.scalar(db.select(db.func.max(Alert.id))) or 0) + 1
        opened = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
        alerts, links = [], []
        for alert_id in range(first, first + count):
            alert = Alert(id=alert_id, site_id=site_id, kind="offline", subject=f"test:{alert_id}",
                          unit_id=None, tier="alarm", opened_at=opened, detail={"n": alert_id})
            payload = canonical(alert.audit_payload())
            seq += 1
            digest = link_hash(key, seq, prev, "alert.open", "alerts", alert_id, payload,
                               format=LINK_FORMAT, at=opened)
            alerts.append({c: getattr(alert, c) for c in
                           ("id", "site_id", "kind", "subject", "unit_id", "tier", "opened_at", "detail")})
            links.append({"seq": seq, "at": opened, "action": "alert.open", "entity": "alerts",
                          "entity_id": alert_id, "payload": payload, "prev_hash": prev,
                          "format": LINK_FORMAT, "hash": digest})
            prev = digest
        db.session.execute(db.insert(Alert), alerts)
        db.session.execute(db.insert(AuditRecord), links)
        head.seq, head.hash = seq, prev
        db.session.commit()


def test_verify_runs_in_the_same_memory_at_ten_times_the_links(app, kitchen):
    import tracemalloc

    def peak_of_verify():
        with app.app_context():
            tracemalloc.start()
            try:
                count, problems = verify(db.session)
                return count, problems, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                db.session.rollback()

    _chain_of_alerts(app, kitchen["site"], 2_000)
    small_count, small_problems, small_peak = peak_of_verify()
    _chain_of_alerts(app, kitchen["site"], 18_000)
    count, problems, peak = peak_of_verify()
    assert (small_problems, problems) == ([], [])
    assert count == small_count + 18_000
    assert peak < 2 * small_peak, (small_peak, peak)  # holding every link would be ~10×
    # And the bulk links above were checked for real: one altered row is named.
    _run_sql(app, "UPDATE alerts SET subject = 'forged' WHERE id = 1500")
    with app.app_context():
        assert [str(p) for p in verify(db.session)[1]] == [
            "alerts 1500: altered since it was recorded at 2026-01-01T00:00:00+00:00 "
            "(audit record #%d)" % _seq_of(1500)]


def _seq_of(alert_id):
    from app.models import AuditRecord
    return db.session.scalar(db.select(AuditRecord.seq).where(AuditRecord.entity == "alerts",
                                                             AuditRecord.entity_id == alert_id))


def test_an_alert_state_that_contradicts_its_events_is_named(app, kitchen, runner):
    """Setting alert_states so an open alert reads resolved passed verify (and stopped its
    escalation): the working state is now checked against the chained events."""
    from app.alerts.operations import acknowledge, mark_recovered, notify_due, raise_alert
    t0 = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
    with app.app_context():
        opened = raise_alert(db.session, site_id=kitchen["site"], kind="offline",
                             subject="unit:9:offline", now=t0)
        other = raise_alert(db.session, site_id=kitchen["site"], kind="offline",
                            subject="unit:8:offline", now=t0)
        notify_due(db.session, t0 + dt.timedelta(minutes=45))  # escalates both
        acknowledge(db.session, other, db.session.get(Staff, kitchen["cook"]), None,
                    corrective_action="Moved the stock", food_outcome="moved",
                    now=t0 + dt.timedelta(minutes=50))
        mark_recovered(db.session, "unit:8:offline", t0 + dt.timedelta(minutes=55))
        db.session.commit()
        ids = (opened.id, other.id)
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    _run_sql(app, f"UPDATE alert_states SET status = 'resolved', open_subject = NULL, "
                  f"escalation_level = 0 WHERE alert_id = {ids[0]}")
    _run_sql(app, f"UPDATE alert_states SET recovered_at = NULL WHERE alert_id = {ids[1]}")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"alert {ids[0]}: its state says status 'resolved' but its chained events say 'open'" \
        in result.output
    assert f"alert {ids[0]}: its state says escalation_level 0" in result.output
    assert f"alert {ids[1]}: its state says recovered_at None" in result.output


# --- Records keep what they meant (issue 11, item 2) ------------------------------------------

def _adopt(app):
    from app.audit import adopt_unchained
    with app.app_context():
        adopt_unchained(db.session)
        db.session.commit()


def test_a_person_renamed_behind_the_apps_back_is_named_and_past_records_keep_the_name(
        app, records, runner, kitchen):
    """Renaming a person changed the 'who' of every past record, unseen by verify."""
    from app.models import AuditRecord
    import json
    _adopt(app)  # the hourly job chains people the chain has not seen yet
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    with app.app_context():  # the link of every record chains the name as it was
        contexts = db.session.execute(db.select(AuditRecord.context).where(
            AuditRecord.entity == "answers")).scalars().all()
    assert contexts and all(json.loads(c)["actor"] == "Cook Sam" for c in contexts)
    _run_sql(app, f"UPDATE staff SET name = 'Chef Mei' WHERE id = {kitchen['cook']}")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"staff {kitchen['cook']}: name is 'Chef Mei' but its chained changes say 'Cook Sam'" \
        in result.output, result.output


def test_a_person_renamed_through_the_chain_still_shows_the_old_name_on_past_records(
        app, records, kitchen):
    from app import audit
    from tests.factories import login_password
    with app.app_context():
        audit.record_change(db.session, subject=f"staff:{kitchen['cook']}", action="staff.renamed",
                            actor_id=kitchen["admin"], data={"name": ["Cook Sam", "Sam Wu"]},
                            site_id=kitchen["site"], reason="spelling")
        db.session.get(Staff, kitchen["cook"]).name = "Sam Wu"
        db.session.commit()
        assert verify(db.session)[1] == []
    chef = app.test_client()
    login_password(chef, "chef@test.kitchen", "chef-password")
    page = chef.get(f"/records/runs/{records['run']}").get_data(as_text=True)
    assert "Opened by Cook Sam" in page and "Submitted by Cook Sam" in page
    assert "Sam Wu" not in page


def test_an_items_text_rewritten_under_past_answers_is_named(app, records, runner):
    """checklist_items.text_en could be rewritten under past answers: what was asked."""
    from app.models import AuditRecord
    import json
    with app.app_context():
        link = db.session.execute(db.select(AuditRecord).where(AuditRecord.entity == "answers")
                                  .order_by(AuditRecord.seq).limit(1)).scalar_one()
        item = json.loads(link.context)["item"]  # the answer chains what was asked
        key = db.session.execute(text(
            f"SELECT key FROM checklist_definitions WHERE id = {item['definition_id']}")).scalar_one()
    assert item["text_en"] and "min_c" in item and "max_c" in item
    _run_sql(app, "UPDATE checklist_items SET text_en = 'Anything' "
                  f"WHERE definition_id = {item['definition_id']} AND key = '{item['key']}'")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"checklist {key} version 1 (checklist_definitions {item['definition_id']}): its items" \
        in result.output, result.output


def test_unit_limits_and_sensor_assignment_are_chained_with_who_and_why(app, kitchen, runner):
    from app.models import AuditRecord, Change
    from app.models.units import Unit
    from app.units.forms import parse_unit_form
    from app.units.operations import attach_sensor, update_unit
    from sensors.models import Sensor
    from tests.factories import salad_fridge
    import json
    with app.app_context():
        unit = salad_fridge(kitchen["site"])
        site = db.session.get(Site, kitchen["site"])
        other = Unit(site_id=site.id, name="Pass fridge", kind="fridge", target_max_c=5.0,
                     critical_max_c=8.0)
        db.session.add(other)
        db.session.flush()
        form = {"name": "Salad fridge", "kind": "fridge", "target_max_c": "6", "critical_max_c": "8",
                "min_c": "", "alert_delay_s": "600", "hysteresis_c": "0.5",
                "expected_interval_s": "60"}
        update_unit(db.session, unit, site, parse_unit_form(form, "C"), kitchen["admin"],
                    "new door seal, runs warmer")
        sensor = db.session.execute(db.select(Sensor)).scalar_one()
        attach_sensor(db.session, sensor, other, site, actor_id=kitchen["admin"])
        db.session.commit()
        change = db.session.execute(db.select(Change).where(Change.subject == f"units:{unit.id}")
                                    ).scalar_one()
        link = db.session.execute(db.select(AuditRecord).where(
            AuditRecord.entity == "changes", AuditRecord.entity_id == change.id)).scalar_one()
        assert json.loads(change.data)["target_max_c"] == [5.0, 6.0]
        assert (link.actor_id, json.loads(link.context)) == (
            kitchen["admin"], {"actor": "Admin Alex", "reason": "new door seal, runs warmer"})
        ids = (unit.id, sensor.id)
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    _run_sql(app, f"UPDATE units SET target_max_c = 9 WHERE id = {ids[0]}")
    _run_sql(app, f"UPDATE sensors SET unit_id = {ids[0]} WHERE id = {ids[1]}")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"units {ids[0]}: target_max_c is 9.0 but its chained changes say 6.0" in result.output
    assert f"sensors {ids[1]}: unit_id is {ids[0]} but its chained changes say" in result.output


def test_an_alert_chains_the_unit_limits_in_force(app, kitchen):
    from app.alerts.operations import raise_alert
    from app.models import AuditRecord
    from tests.factories import salad_fridge
    import json
    with app.app_context():
        unit = salad_fridge(kitchen["site"])
        alert = raise_alert(db.session, site_id=kitchen["site"], kind="temperature",
                            subject=f"unit:{unit.id}:temperature", unit_id=unit.id,
                            now=dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc))
        db.session.commit()
        link = db.session.execute(db.select(AuditRecord).where(
            AuditRecord.entity == "alerts", AuditRecord.entity_id == alert.id)).scalar_one()
        limits = json.loads(link.context)["unit"]
    assert (limits["name"], limits["target_max_c"], limits["critical_max_c"]) == \
        ("Salad fridge", 5.0, 8.0)


# --- Readings sealed per sensor per hour (issue 11, item 3) -----------------------------------

T_READ = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def sealed_readings(app, kitchen):
    """Three hours of one reading a minute for the salad fridge, sealed by the job at 15:15."""
    from app.seals import seal_readings
    from sensors.models import Sensor
    from tests.factories import feed_salad, salad_fridge
    with app.app_context():
        salad_fridge(kitchen["site"], at=T_READ - dt.timedelta(minutes=1))
        feed_salad([4.0 + (i % 7) / 10 for i in range(180)], T_READ)
        outcome = seal_readings(db.session, T_READ + dt.timedelta(hours=3, minutes=15))
        db.session.commit()
        sensor = db.session.execute(db.select(Sensor)).scalar_one()
        return {"outcome": outcome, "sensor": sensor.id, "key": sensor.key}


def _reading_id(app, sensor_id, at):
    with app.app_context():
        return db.session.execute(text(
            f"SELECT id FROM readings WHERE sensor_id = {sensor_id} ORDER BY measured_at")).scalars().all()


def test_readings_are_sealed_per_sensor_and_hour_and_the_job_is_idempotent(app, sealed_readings, runner):
    from app.models.audit import ReadingSeal
    from app.seals import seal_readings
    # 11:59 (the fridge's first reading) and 12:00–14:59; 15:00–15:05 is not closed yet.
    assert sealed_readings["outcome"] == "sealed 4 sensor-hours, 0 late readings"
    with app.app_context():
        assert seal_readings(db.session, T_READ + dt.timedelta(hours=3, minutes=20)) == \
            "sealed 0 sensor-hours, 0 late readings"
        seals = db.session.execute(db.select(ReadingSeal.hour_start, ReadingSeal.count)
                                   .order_by(ReadingSeal.hour_start)).all()
    assert [count for _, count in seals] == [1, 60, 60, 60]
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("tamper,change", [
    ("UPDATE readings SET temperature_c = 3.0 WHERE id = {id}", "readings altered since it was sealed (60 sealed, 60 now"),
    ("DELETE FROM readings WHERE id = {id}", "readings removed since it was sealed (60 sealed, 59 now"),
    ("UPDATE readings SET received_at = received_at + interval '1 second' WHERE id = {id}"
     if False else "UPDATE readings SET time_source = 'received' WHERE id = {id}",
     "readings altered since it was sealed"),
    ("INSERT INTO readings (sensor_id, measured_at, temperature_c, received_at, time_source, offset_c) "
     "VALUES ({sensor}, '2026-11-27 13:30:30', 2.0, '2026-11-27 13:30:30', 'device', 0)",
     "readings inserted since it was sealed (60 sealed, 61 now"),
])
def test_a_reading_changed_in_a_sealed_hour_is_named_with_its_sensor_and_hour(
        app, sealed_readings, runner, tamper, change):
    """Editing or deleting readings was not detected: they were not chained."""
    ids = _reading_id(app, sealed_readings["sensor"], None)
    reading_at_1330 = ids[1 + 90]  # 11:59, then one a minute from 12:00
    _run_sql(app, tamper.format(id=reading_at_1330, sensor=sealed_readings["sensor"]))
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"sensor {sealed_readings['key']} hour 2026-11-27T13:00 UTC: {change}" in result.output, \
        result.output


def test_all_of_a_sealed_hours_readings_deleted_is_named(app, sealed_readings, runner):
    _run_sql(app, "DELETE FROM readings WHERE measured_at >= '2026-11-27 14:00:00'")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"sensor {sealed_readings['key']} hour 2026-11-27T14:00 UTC: readings removed since " \
        "it was sealed (60 sealed, 0 now" in result.output, result.output


def test_a_reading_arriving_after_its_hour_was_sealed_is_sealed_apart_as_late(
        app, sealed_readings, runner):
    """A device's buffer sent late is not taken silently into the sealed hour."""
    import json
    from app.models.audit import ReadingSeal
    from app.seals import late_readings, seal_readings
    from sensors.store import Message, store_batch
    arrived = T_READ + dt.timedelta(hours=3, minutes=30)
    with app.app_context():
        store_batch(db.session, [Message("brigade/salad/reading", json.dumps(
            {"t": 4.4, "ts": "2026-11-27T13:30:30+00:00"}).encode(), arrived)])
        db.session.commit()
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0  # not sealed yet: pending
    with app.app_context():
        assert seal_readings(db.session, arrived + dt.timedelta(minutes=15)) == \
            "sealed 1 sensor-hours, 1 late readings"
        db.session.commit()
        late = db.session.execute(db.select(ReadingSeal).where(ReadingSeal.late.is_(True))).scalar_one()
        assert (late.hour_start, late.count) == (T_READ + dt.timedelta(hours=1), 1)
        assert late_readings(db.session) == (1, 1)
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "1 reading(s) arrived after their hour was sealed" in result.output
    # The late seal is as binding as the first: the late reading cannot be edited either.
    _run_sql(app, "UPDATE readings SET temperature_c = 9.9 WHERE measured_at > '2026-11-27 13:30:01' "
                  "AND measured_at < '2026-11-27 13:30:59'")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "hour 2026-11-27T13:00 UTC: readings altered" in result.output


# --- The head anchored outside the database (issue 11, item 5) --------------------------------

def _rechain_from(app, seq_from: int) -> None:
    """What someone with the database and the audit key can do: rewrite a record and
    recompute every link from ``seq_from`` on, and the head, so the chain alone verifies."""
    from app.audit import canonical, link_hash
    from app.models import Answer, AuditHead
    key = app.config["BRIGADE_AUDIT_KEY"].encode()
    with app.app_context():
        prev = db.session.execute(text(
            f"SELECT hash FROM audit_records WHERE seq = {seq_from - 1}")).scalar_one()
        links = db.session.execute(db.select(AuditRecord).where(AuditRecord.seq >= seq_from)
                                   .order_by(AuditRecord.seq)).scalars().all()
        for link in links:
            if link.entity == "answers":
                answer = db.session.get(Answer, link.entity_id)
                link.payload = canonical(answer.audit_payload())
            link.prev_hash = prev
            link.hash = link_hash(key, link.seq, prev, link.action, link.entity, link.entity_id,
                                  link.payload, format=link.format, at=link.at,
                                  actor_id=link.actor_id, device_id=link.device_id,
                                  context=link.context)
            prev = link.hash
        head = db.session.get(AuditHead, 1)
        head.hash = prev
        db.session.commit()


def test_a_rechain_with_the_key_in_hand_is_caught_by_the_anchor_file(app, records, runner):
    """A full re-chain with instance/audit_key rewrote a 9 °C fail to a 4 °C pass and verify
    said intact: the head now leaves the database by itself, and verify reads the anchors."""
    import os
    import stat
    from app.anchors import anchor_head, anchor_path
    from app.models import AuditHead
    with app.app_context():
        assert anchor_head(db.session) == "head #%d anchored" % db.session.get(AuditHead, 1).seq
        assert anchor_head(db.session).endswith("already anchored")  # nothing new: no line
        path = anchor_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_text().splitlines()) == 1
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    first_answer = records["seq"]["s2"]
    _run_sql(app, "UPDATE answers SET value = '4', temperature_c = 4.0 "
                  "WHERE id = (SELECT min(id) FROM answers WHERE temperature_c IS NOT NULL)")
    _rechain_from(app, first_answer)
    with app.app_context():  # the chain alone is consistent again
        assert [p for p in verify(db.session)[1] if "anchor" not in p.what] == []
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert "does not match the head anchored at" in result.output and str(path) in result.output, \
        result.output


def test_links_removed_from_the_end_with_the_head_rewound_are_caught_by_the_anchor(
        app, records, runner):
    from app.anchors import anchor_head
    with app.app_context():
        anchor_head(db.session)
    with app.app_context():  # the newest link: the timer's outcome
        seq = db.session.scalar(db.select(db.func.max(AuditRecord.seq)))
    previous = _hash_of(app, seq - 1)
    _run_sql(app, f"DELETE FROM audit_records WHERE seq = {seq}")
    _run_sql(app, "DELETE FROM timer_outcomes WHERE id = 1")
    _run_sql(app, f"UPDATE audit_head SET seq = {seq - 1}, hash = '{previous}'")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert f"audit record #{seq}: is gone, but it was the head anchored at" in result.output


def test_the_head_is_anchored_at_most_hourly_by_the_job_and_an_edited_anchor_is_named(
        app, records, kitchen, runner):
    from app.anchors import anchor_head, anchor_path
    from app.timers.operations import start_timer
    t0 = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)
    with app.app_context():
        assert anchor_head(db.session, t0) .endswith("anchored")
        start_timer(db.session, db.session.get(Site, kitchen["site"]),
                    db.session.get(Staff, kitchen["cook"]), "dev1", "plated", "Rice")
        db.session.commit()
        assert "anchored next after" in anchor_head(db.session, t0 + dt.timedelta(minutes=30))
        assert anchor_head(db.session, t0 + dt.timedelta(minutes=61)).endswith("anchored")
        path = anchor_path()
    assert len(path.read_text().splitlines()) == 2
    with open(path, "a") as fh:
        fh.write("not an anchor\n")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1 and "1 line(s) are not anchors" in result.output


def test_the_daily_summary_carries_the_head(app, records):
    from app.alerts.summary import summarise, summary_text
    from app.models import AuditHead
    with app.app_context():
        site = db.session.get(Site, 1)
        head = db.session.get(AuditHead, 1)
        _, body = summary_text(site, summarise(db.session, site, DAY))
    assert f"Audit chain head now: {head.seq}:{head.hash}" in body


def test_the_audit_key_can_come_from_a_file_outside_the_instance_folder(tmp_path):
    import config
    key_file = tmp_path / "elsewhere" / "audit.key"
    key_file.parent.mkdir()
    key_file.write_text("k" * 64 + "\n")
    settings = config.load(tmp_path / "instance", {"BRIGADE_SECRET_KEY": "s",
                                                  "BRIGADE_AUDIT_KEY_FILE": str(key_file)})
    assert settings["BRIGADE_AUDIT_KEY"] == "k" * 64
    assert settings["BRIGADE_AUDIT_ANCHOR_FILE"] == str(tmp_path / "instance" / "audit-anchors")
    with pytest.raises(config.ConfigError, match="BRIGADE_AUDIT_KEY_FILE"):
        config.load(tmp_path / "instance", {"BRIGADE_SECRET_KEY": "s",
                                            "BRIGADE_AUDIT_KEY_FILE": str(tmp_path / "missing")})


def test_the_audit_seal_job_seals_adopts_and_anchors(app, sealed_readings, runner):
    from app.anchors import anchor_path
    from app.scheduler import _audit_seal, _jobs
    assert any(job.id == "audit-seal" for job in _jobs())
    with app.app_context():
        outcome = _audit_seal(db.session, T_READ + dt.timedelta(hours=4, minutes=15))
        db.session.commit()
        path = anchor_path()
    # 15:00 has no readings; the people and the salad fridge were new to the chain.
    assert outcome.startswith("sealed 0 sensor-hours, 0 late readings; ") and "anchored" in outcome
    assert " 0 adopted" not in outcome
    assert path.exists()
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0 and "1 anchor(s) in" in result.output, result.output


# --- What verify reports (issue 11, item 6) ----------------------------------------------------

def _verify_json(runner, *args):
    import json
    result = runner.invoke(args=["audit", "verify", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_verify_json_names_the_record_what_changed_and_when(app, records, runner):
    """An inspector's (or a machine's) reading: each finding names the record, what changed
    and the time it is about; the same exit codes as the text output."""
    with app.app_context():
        recorded = db.session.execute(db.select(AuditRecord.at).where(
            AuditRecord.entity == "answers", AuditRecord.entity_id == 2)).scalar_one()
        removed_at = db.session.execute(db.select(AuditRecord.at).where(
            AuditRecord.entity == "timer_outcomes", AuditRecord.entity_id == 1)).scalar_one()
        links = db.session.scalar(db.select(db.func.count()).select_from(AuditRecord))
    code, intact = _verify_json(runner)
    assert code == 0 and intact["findings"] == []
    assert intact["summary"] == {"links": links, "sealed_hours": 0, "problems": 0, "intact": True,
                                 "text": f"{links} links and 0 sealed hours checked: intact"}
    _run_sql(app, "UPDATE answers SET value = 'fail', outcome = 'fail' WHERE id = 2")
    _run_sql(app, "DELETE FROM timer_outcomes WHERE id = 1")
    code, report = _verify_json(runner)
    assert code == 1
    assert report["summary"]["problems"] == 2 and report["summary"]["intact"] is False
    assert report["summary"]["text"] == f"{links} links and 0 sealed hours checked: 2 problem(s)"
    by_record = {(f["record"]["table"], f["record"]["id"]): f for f in report["findings"]}
    altered, gone = by_record[("answers", 2)], by_record[("timer_outcomes", 1)]
    assert altered["change"] == ("outcome differs: chained 'pass', now 'fail'; "
                                 "value differs: chained '3.2', now 'fail'")
    iso = lambda at: at.replace(tzinfo=at.tzinfo or dt.timezone.utc).astimezone(
        dt.timezone.utc).isoformat(timespec="seconds")
    assert altered["time_range"] == {"from": iso(recorded), "to": iso(recorded)}
    assert altered["detail"].startswith("altered since it was recorded by Cook Sam")
    assert gone["change"] == "removed"
    assert gone["time_range"] == {"from": iso(removed_at), "to": iso(removed_at)}


def test_verify_json_names_a_readings_sensor_and_sealed_hour(app, sealed_readings, runner):
    code, intact = _verify_json(runner)
    assert code == 0 and intact["summary"]["sealed_hours"] == 4
    ids = _reading_id(app, sealed_readings["sensor"], None)
    _run_sql(app, f"DELETE FROM readings WHERE id = {ids[1 + 90]}")  # the 13:30 reading
    code, report = _verify_json(runner)
    assert code == 1
    [finding] = report["findings"]
    assert finding["record"] == {"sensor": sealed_readings["key"],
                                 "sensor_id": sealed_readings["sensor"],
                                 "hour": "2026-11-27T13:00:00+00:00"}
    assert finding["change"] == "readings removed: 60 sealed, 59 now"
    assert finding["time_range"] == {"from": "2026-11-27T13:00:00+00:00",
                                     "to": "2026-11-27T14:00:00+00:00"}


def test_verify_json_says_what_a_renamed_column_was_and_is(app, records, runner, kitchen):
    from app.units.forms import parse_unit_form
    from app.units.operations import update_unit
    from tests.factories import salad_fridge
    with app.app_context():
        unit = salad_fridge(kitchen["site"])
        site = db.session.get(Site, kitchen["site"])
        form = {"name": "Salad fridge", "kind": "fridge", "target_max_c": "6",
                "critical_max_c": "8", "min_c": "", "alert_delay_s": "600",
                "hysteresis_c": "0.5", "expected_interval_s": "60"}
        update_unit(db.session, unit, site, parse_unit_form(form, "C"), kitchen["admin"], "seal")
        db.session.commit()
        unit_id = unit.id
    _run_sql(app, f"UPDATE units SET target_max_c = 9 WHERE id = {unit_id}")
    code, report = _verify_json(runner)
    assert code == 1
    [finding] = [f for f in report["findings"] if f["record"] == {"table": "units", "id": unit_id}]
    assert finding["change"] == "target_max_c differs: chained 6.0, now 9.0"
    assert finding["time_range"]["from"] is not None


def test_verify_ends_with_a_summary_line_and_prints_each_findings_change_and_time(
        app, records, runner):
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 0
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("audit verify: ") and last.endswith(" sealed hours checked: intact")
    _run_sql(app, "UPDATE answers SET value = 'fail', outcome = 'fail' WHERE id = 2")
    result = runner.invoke(args=["audit", "verify"])
    assert result.exit_code == 1
    assert result.stdout.strip().splitlines()[-1].endswith(" sealed hours checked: 1 problem(s)")
    assert "TAMPERED  answers 2: altered since it was recorded" in result.output
    assert "changed: outcome differs: chained 'pass', now 'fail'; value differs: chained " \
        "'3.2', now 'fail'; time: 20" in result.output, result.output


def test_a_new_key_takes_over_the_chain_and_the_old_links_still_verify(app, records, runner):
    from app.audit import KEY_CHANGED, fingerprint
    from app.models import Site, Staff
    from app.timers.operations import start_timer
    old = app.config["BRIGADE_AUDIT_KEY"]
    # Nothing to hand over while the chain is on the current key.
    refused = runner.invoke(args=["audit", "rotate-key"])
    assert refused.exit_code == 1 and "already on the current key" in refused.output
    app.config.update(BRIGADE_AUDIT_KEY="the-new-audit-key", BRIGADE_AUDIT_PREVIOUS_KEYS=[old])
    result = runner.invoke(args=["audit", "rotate-key"])
    assert result.exit_code == 0, result.output
    assert f"{fingerprint(old.encode())} -> {fingerprint(b'the-new-audit-key')}" in result.output
    with app.app_context():
        handover = db.session.execute(db.select(AuditRecord).where(
            AuditRecord.action == KEY_CHANGED)).scalar_one()
        site = db.session.get(Site, 1)
        start_timer(db.session, site, db.session.get(Staff, 2), None, "plated", "After the key")
        db.session.commit()
        count, problems = verify(db.session)
        assert problems == [] and count > handover.seq
        # Without the old key the old links cannot be vouched for: named, not passed.
        app.config["BRIGADE_AUDIT_PREVIOUS_KEYS"] = []
        _, problems = verify(db.session)
        assert problems and any("audit record #1 " in str(p) for p in problems)
        # With only the old key, the links after the hand-over are named as of a key not given.
        app.config.update(BRIGADE_AUDIT_KEY=old, BRIGADE_AUDIT_PREVIOUS_KEYS=[])
        _, problems = verify(db.session)
        assert [str(p).split(":")[0] for p in problems] == [
            f"audit records #{handover.seq + 1} onward"]
    # A hand-over forged without the old key (the database's users have not got it) fails.
    app.config.update(BRIGADE_AUDIT_KEY="the-new-audit-key", BRIGADE_AUDIT_PREVIOUS_KEYS=[old])
    _run_sql(app, f"UPDATE audit_records SET hash = '{'0' * 64}' WHERE seq = {handover.seq}")
    with app.app_context():
        _, problems = verify(db.session)
        assert any(f"audit record #{handover.seq} " in str(p) for p in problems)
