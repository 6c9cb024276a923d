"""Checklist operations: definitions, runs, answers, submission and sign-off."""
import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.checklists.definitions import (DEFINITIONS_DIR, DefinitionError, current_definitions,
                                        load_all)
from app.checklists.operations import (SubmissionRefused, current_answers, due_today, open_run,
                                       record_answer, submit_run, verify_run)
from app.errors import OperationError
from app.checklists.schedules import slots_for_day
from app.models import (Answer, AuditRecord, ChecklistDefinition, ImmutableRecordError, Rule,
                        Site, Staff, db)
from tests.factories import at_local

DAY = dt.date(2026, 11, 27)


def _setup(kitchen):
    site = db.session.get(Site, kitchen["site"])
    definition = current_definitions(db.session)[0]
    slot = slots_for_day(definition.schedules, DAY, site.timezone)[0]
    return site, definition, slot


def _open(kitchen, who="cook"):
    site, definition, slot = _setup(kitchen)
    cook = db.session.get(Staff, kitchen[who])
    run = open_run(db.session, site, definition.key, slot, cook, None,
                   now=at_local(DAY, "11:05"))
    db.session.commit()
    return run, cook, {i.key: i for i in run.definition.items}


def _answer_all(run, cook, items, fail=()):
    for key, item in items.items():
        if item.kind == "passfail":
            record_answer(db.session, run, item, cook, "dev1", value="fail" if key in fail else "pass")
        elif item.kind == "temperature":
            record_answer(db.session, run, item, cook, "dev1", value="3.5")
    db.session.commit()


def test_default_checklist_covers_all_eight_rules_in_two_languages(ctx, kitchen):
    definition = current_definitions(db.session)[0]
    assert definition.key == "serving_hygiene"
    assert {i.rule_code for i in definition.items} == {f"R{n}" for n in range(1, 9)}
    assert all(i.text_en and i.text_zh for i in definition.items)
    rules = db.session.execute(select(Rule)).scalars().all()
    assert len(rules) == 8
    # The Chinese of each rule is the seed's own text.
    seed = (Path(__file__).resolve().parents[2] / "shared/seed/kitchen-rules.zh.txt")
    if seed.exists():
        text = seed.read_text(encoding="utf-8")
        assert all(r.text_zh in text for r in rules)
    assert {i.kind for i in definition.items} >= {"passfail", "temperature", "time"}


def test_loading_is_idempotent_and_a_change_makes_a_new_version(ctx, kitchen, tmp_path):
    assert all(r.status == "unchanged" for r in load_all(db.session))
    run, cook, items = _open(kitchen)
    folder = tmp_path / "defs"
    shutil.copytree(DEFINITIONS_DIR, folder)
    path = folder / "serving_hygiene.yaml"
    path.write_text(path.read_text().replace("max_c: 5.0", "max_c: 4.0"))
    results = {r.key: r for r in load_all(db.session, folder)}
    db.session.commit()
    assert (results["serving_hygiene"].status, results["serving_hygiene"].version) == ("updated", 2)
    assert current_definitions(db.session)[0].version == 2
    db.session.refresh(run)
    assert run.definition.version == 1  # the old run keeps its version
    assert db.session.scalar(select(func.count()).select_from(ChecklistDefinition)) == 2


@pytest.mark.parametrize("mutation,message", [
    (("kind: temperature", "kind: thermometer"), "kind must be one of"),
    (("rule: R5", "rule: R99"), "R99"),
    (('at: "11:00"', 'at: "11h"'), "not a time"),
    (("zh: 供应卫生检查", "fr: Hygiène"), "needs both 'en' and 'zh'"),
    (("key: covered", "key: spills_wiped"), "duplicate key"),
    (("items:", "items: [\n"), "not valid YAML")])
def test_bad_definitions_are_refused_naming_the_place(ctx, kitchen, tmp_path, mutation, message):
    folder = tmp_path / "defs"
    shutil.copytree(DEFINITIONS_DIR, folder)
    path = folder / "serving_hygiene.yaml"
    path.write_text(path.read_text().replace(*mutation, 1))
    with pytest.raises(DefinitionError, match=message) as info:
        load_all(db.session, folder)
    assert "serving_hygiene.yaml" in str(info.value)


def test_opening_a_slot_twice_gives_the_same_run(ctx, kitchen):
    run, cook, _ = _open(kitchen)
    again, _, _ = _open(kitchen, who="cook2")
    assert again.id == run.id and run.opened_by_id == cook.id


def test_a_slot_cannot_be_opened_before_it_starts(ctx, kitchen):
    site, definition, slot = _setup(kitchen)
    cook = db.session.get(Staff, kitchen["cook"])
    with pytest.raises(OperationError, match="not open yet"):
        open_run(db.session, site, definition.key, slot, cook, None, now=at_local(DAY, "10:59"))


def test_due_today_reports_status_per_slot(ctx, kitchen):
    site, definition, _ = _setup(kitchen)
    run, cook, items = _open(kitchen)
    statuses = [(e.slot.schedule_key, e.status) for e in
                due_today(db.session, site, at_local(DAY, "13:10"), [definition])]
    assert statuses[:3] == [("before_lunch", "overdue"), ("lunch_service", "overdue"),
                            ("lunch_service", "upcoming")]
    _answer_all(run, cook, items)
    submit_run(db.session, run, cook, None)
    db.session.commit()
    statuses = [e.status for e in due_today(db.session, site, at_local(DAY, "13:10"), [definition])]
    assert statuses[0] == "submitted"


def test_answers_are_appended_never_edited(ctx, kitchen):
    run, cook, items = _open(kitchen)
    first = record_answer(db.session, run, items["covered"], cook, "dev1", value="pass")
    same = record_answer(db.session, run, items["covered"], cook, "dev1", value="pass")
    assert same is first  # a re-sent tap records nothing new
    second = record_answer(db.session, run, items["covered"], cook, "dev1", value="fail")
    db.session.commit()
    assert second.supersedes_id == first.id
    assert current_answers(run)[items["covered"].id].value == "fail"
    assert db.session.scalar(select(func.count()).select_from(Answer)) == 2
    first.value = "na"
    with pytest.raises(ImmutableRecordError):
        db.session.flush()
    db.session.rollback()
    db.session.delete(db.session.get(Answer, first.id))
    with pytest.raises(ImmutableRecordError):
        db.session.flush()


@pytest.mark.parametrize("entered,outcome,stored", [
    ("4.9", "pass", 4.9), ("5", "pass", 5.0), ("5.1", "fail", 5.1), ("5,5", "fail", 5.5),
    ("-2", "pass", -2.0), ("na", "na", None)])
def test_temperature_outside_its_limit_is_a_fail(ctx, kitchen, entered, outcome, stored):
    run, cook, items = _open(kitchen)
    answer = record_answer(db.session, run, items["cold_unit_temp"], cook, None, value=entered)
    assert (answer.outcome, answer.temperature_c) == (outcome, stored)


@pytest.mark.parametrize("entered", ["warm", "", "nan", "inf", "300", "-80"])
def test_nonsense_temperatures_are_refused(ctx, kitchen, entered):
    run, cook, items = _open(kitchen)
    with pytest.raises(OperationError):
        record_answer(db.session, run, items["cold_unit_temp"], cook, None, value=entered)


def test_fahrenheit_site_converts_entries(ctx, kitchen):
    db.session.get(Site, kitchen["site"]).temp_unit = "F"
    run, cook, items = _open(kitchen)
    answer = record_answer(db.session, run, items["cold_unit_temp"], cook, None, value="41")
    assert answer.temperature_c == 5.0 and answer.outcome == "pass"
    assert record_answer(db.session, run, items["cold_unit_temp"], cook, None,
                         value="42").outcome == "fail"


def test_submission_refused_until_every_fail_has_a_corrective_action(ctx, kitchen):
    run, cook, items = _open(kitchen)
    with pytest.raises(SubmissionRefused) as info:
        submit_run(db.session, run, cook, None)
    assert {item.key for item, why in info.value.problems if why == "unanswered"} == {
        k for k, i in items.items() if i.required}
    _answer_all(run, cook, items, fail={"utensils_used"})
    with pytest.raises(SubmissionRefused) as info:
        submit_run(db.session, run, cook, None)
    assert [(i.key, why) for i, why in info.value.problems] == [
        ("utensils_used", "needs a corrective action")]
    assert "Cooked food is plated" in str(info.value)
    record_answer(db.session, run, items["utensils_used"], cook, None, value="fail",
                  corrective_action="Discarded food touched by hand")
    submission = submit_run(db.session, run, cook, "dev1")
    db.session.commit()
    assert submission.submitted_by_id == cook.id
    with pytest.raises(OperationError, match="already submitted"):
        submit_run(db.session, run, cook, None)


def test_only_a_chef_verifies_and_only_after_submission(ctx, kitchen):
    run, cook, items = _open(kitchen)
    chef = db.session.get(Staff, kitchen["chef"])
    with pytest.raises(OperationError, match="not been submitted"):
        verify_run(db.session, run, chef, None)
    _answer_all(run, cook, items)
    submit_run(db.session, run, cook, None)
    with pytest.raises(OperationError, match="Only the head chef"):
        verify_run(db.session, run, cook, None)
    verification = verify_run(db.session, run, chef, "dev1", note="Good service")
    db.session.commit()
    assert verification.verified_by_id == chef.id
    with pytest.raises(OperationError, match="already verified"):
        verify_run(db.session, run, chef, None)


def test_corrections_after_submission_need_a_chef_and_a_reason(ctx, kitchen):
    run, cook, items = _open(kitchen)
    _answer_all(run, cook, items)
    submit_run(db.session, run, cook, None)
    db.session.commit()
    chef = db.session.get(Staff, kitchen["chef"])
    item = items["covered"]
    with pytest.raises(OperationError, match="ask the head chef"):
        record_answer(db.session, run, item, cook, None, value="fail")
    with pytest.raises(OperationError, match="needs a reason"):
        record_answer(db.session, run, item, chef, None, value="fail", corrective_action="x")
    original = current_answers(run)[item.id]
    fixed = record_answer(db.session, run, item, chef, None, value="fail",
                          corrective_action="Covered the dishes now",
                          reason="Cook told me the soup was uncovered")
    db.session.commit()
    assert fixed.supersedes_id == original.id and fixed.reason.startswith("Cook told me")
    assert db.session.get(Answer, original.id).value == "pass"  # the original is kept
    actions = db.session.execute(select(AuditRecord.action).where(AuditRecord.entity != "changes")
                                 .order_by(AuditRecord.seq)).scalars().all()
    assert actions[0] == "run.opened" and actions[-1] == "answer.corrected"
