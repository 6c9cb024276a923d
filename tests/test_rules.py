"""The rules as a site keeps them: versions kept whole, store rules that prevail, the head
chef's yearly review with the year's evidence, training acknowledgements, suggestions, and the
review's reminders in the site's time zone."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from app import audit
from app.alerts.operations import notify_due
from app.checklists.definitions import current_definitions
from app.checklists.operations import open_run, record_answer, submit_run
from app.checklists.schedules import slots_for_day
from app.errors import OperationError
from app.models import (UTC, Alert, AlertEvent, Notification, Role, RuleAcknowledgement,
                        RuleSetVersion, Site, Staff, db, set_clock)
from app.rules.operations import (compare, current_version, evidence, publish_review,
                                  save_review, start_review, suggest, version_in_force)
from app.rules_review import remind_review, review_due, year_after
from tests.factories import Kitchen, at_local, login_password, login_pin

DAY = dt.date(2026, 11, 27)
CHEF = ("chef@test.kitchen", "chef-password")
AMEND_R3 = {"decision_R3": "amend", "title_R3_en": "Plating on time, and labelled",
            "title_R3_zh": "按时装盘并标注", "text_R3_en": "Dishes are plated when served and "
            "labelled with the time.", "text_R3_zh": "菜点在供应时装盘,并标注时间。"}
NEW_RULE = {"new_title_en": "Allergens", "new_title_zh": "过敏原",
            "new_text_en": "Allergen dishes are plated apart with their own tools.",
            "new_text_zh": "含过敏原的菜点单独装盘,使用专用工具。"}


def _objects(kitchen):
    return (db.session.get(Site, kitchen["site"]), db.session.get(Staff, kitchen["chef"]),
            db.session.get(Staff, kitchen["cook"]))


def _review_and_publish(kitchen, summary="Plating labelled; spills folded into R8."):
    site, chef, _cook = _objects(kitchen)
    review = start_review(db.session, site, chef)
    errors = save_review(db.session, review, chef, {**AMEND_R3, "decision_R4": "retire",
                                                    **NEW_RULE, "summary": summary})
    assert errors == {}
    version = publish_review(db.session, review, chef, "dev1")
    db.session.commit()
    return version


def test_a_site_starts_from_the_default_rules_and_a_review_publishes_a_whole_new_version(
        app, kitchen):
    with app.app_context():
        site, chef, _cook = _objects(kitchen)
        first = current_version(db.session, site)
        db.session.commit()
        assert first.number == 1 and [r["code"] for r in first.rules] == [
            f"R{n}" for n in range(1, 9)]
        assert {r["source"] for r in first.rules} == {"default"}
        before = json.dumps(first.rules, sort_keys=True)
        second = _review_and_publish(kitchen)
        assert (second.number, second.published_by_id) == (2, kitchen["chef"])
        codes = [r["code"] for r in second.rules]
        assert codes == ["R1", "R2", "R3", "R5", "R6", "R7", "R8", "S1"]
        r3 = next(r for r in second.rules if r["code"] == "R3")
        assert (r3["source"], r3["overrides"], r3["title"]["zh"]) == ("store", "R3", "按时装盘并标注")
        s1 = second.rules[-1]
        assert (s1["source"], s1["overrides"], s1["number"]) == ("store", None, 9)
        assert second.changed == ["R3", "R4", "S1"] and second.retired == ["R4"]
        # Version 1 is kept whole; the chain vouches for both.
        db.session.expire_all()
        assert json.dumps(db.session.get(RuleSetVersion, first.id).rules, sort_keys=True) == before
        assert audit.verify(db.session)[1] == []
        rows = {row["code"]: row for row in compare(first, second)}
        assert {c: r["status"] for c, r in rows.items()} == {
            "R1": "unchanged", "R2": "unchanged", "R3": "amended", "R5": "unchanged",
            "R6": "unchanged", "R7": "unchanged", "R8": "unchanged", "S1": "added",
            "R4": "retired"}
        inserted = "".join(t for op, t in rows["R3"]["diff"]["text"]["en"] if op == "ins")
        assert "labelled" in inserted
        # Chinese is compared by character: only what was added is marked.
        assert rows["R3"]["diff"]["title"]["zh"] == [("same", "按时装盘"), ("ins", "并标注")]


def test_the_rule_pages_show_the_text_in_force_and_where_it_comes_from(app, kitchen):
    with app.app_context():
        _review_and_publish(kitchen)
    cook = app.test_client()
    login_pin(cook, kitchen["cook2"], Kitchen.PINS["cook2"])  # reads Chinese
    page = cook.get("/rules").get_data(as_text=True)
    assert "按时装盘并标注" in page and "Plating on time, and labelled" in page  # both languages
    assert "溅出擦洗" not in page  # R4 is retired: not in force
    assert "过敏原" in page
    assert "本制度如与本店相关制度发生冲突" in page  # the appendix
    chef = app.test_client()
    login_password(chef, *CHEF)
    english = chef.get("/rules").get_data(as_text=True)
    assert "Store rule: prevails over default rule R3" in english
    diff = chef.get("/rules/diff?to=2").get_data(as_text=True)
    assert "<ins>" in diff and 'data-status="retired"' in diff
    assert chef.get("/rules/versions/1").status_code == 200
    assert chef.get("/rules/versions/9").status_code == 404


def test_only_the_sites_head_chef_reviews_and_a_review_is_saved_and_continued(app, kitchen):
    admin = app.test_client()
    login_password(admin, "admin@test.kitchen", "admin-password")
    assert admin.get("/rules/review").status_code == 403
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    assert cook.get("/rules/review").status_code == 403
    chef = app.test_client()
    login_password(chef, *CHEF)
    assert chef.get("/rules/review").status_code == 200
    half = {**AMEND_R3, "text_R3_zh": "", "decision_R5": "retire", "summary": "draft"}
    response = chef.post("/rules/review", data={**half, "action": "save"})
    assert response.status_code == 400 and "in English and in Chinese" in response.get_data(True)
    # Continued later: what was right is there; the publish refuses what is missing.
    page = chef.get("/rules/review").get_data(as_text=True)
    assert 'value="retire" checked data-testid="decision-R5-retire"' in page
    refused = chef.post("/rules/review", data={"decision_R1": "keep", "summary": "",
                                               "action": "publish"})
    assert refused.status_code == 400 and "summary" in refused.get_data(True)
    done = chef.post("/rules/review", data={**AMEND_R3, "decision_R5": "retire",
                                            "summary": "R3 labelled; R5 folded in",
                                            "action": "publish"})
    assert done.status_code == 302 and done.headers["Location"].endswith("/rules/diff?to=2")
    with app.app_context():
        with pytest.raises(OperationError, match="head chef"):
            site, _chef, cook_ = _objects(kitchen)
            start_review(db.session, site, db.session.get(Staff, kitchen["admin"]))


def test_staff_read_the_changed_rules_on_the_tablet_and_the_head_chef_sees_who_has_not(
        app, kitchen):
    with app.app_context():
        version = _review_and_publish(kitchen)
        version_id = version.id
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    home = cook.get("/").get_data(as_text=True)
    for code in ("R3", "R4", "S1"):
        assert f'data-testid="to-read-{code}"' in home
    # Below the checklists: never in the way of what is due.
    assert home.index('data-testid="rules-to-read"') > home.index("timers")
    for code in ("R3", "R4", "S1"):
        assert cook.post(f"/rules/read/{version_id}/{code}").status_code == 302
    assert cook.post(f"/rules/read/{version_id}/R3").status_code == 302  # again: nothing new
    assert cook.post(f"/rules/read/{version_id}/R1").status_code == 400  # nothing new in R1
    assert 'data-testid="to-read-' not in cook.get("/").get_data(as_text=True)
    with app.app_context():
        acks = db.session.execute(select(RuleAcknowledgement).where(
            RuleAcknowledgement.staff_id == kitchen["cook"])).scalars().all()
        assert sorted(a.rule_code for a in acks) == ["R3", "R4", "S1"]
        assert {a.locale for a in acks} == {"en"}
    chef = app.test_client()
    login_password(chef, *CHEF)
    page = chef.get("/rules").get_data(as_text=True)
    assert f'data-testid="training-{kitchen["cook"]}"' in page
    row = page.split(f'data-testid="training-{kitchen["cook"]}"')[1].split("</tr>")[0]
    assert "all 3 changed rules" in row
    other = page.split(f'data-testid="training-{kitchen["cook2"]}"')[1].split("</tr>")[0]
    assert "0 of 3" in other


def test_a_cooks_suggestion_reaches_the_head_chef_and_the_review(app, kitchen):
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    assert cook.post("/rules/suggest", data={"rule": "R2", "text": ""}).status_code == 400
    assert cook.post("/rules/suggest", data={"rule": "R9", "text": "x"}).status_code == 400
    assert cook.post("/rules/suggest", data={
        "rule": "R2", "text": "Put a thermometer in the cold well too."}).status_code == 302
    assert cook.get("/rules/suggestions").status_code == 403
    chef = app.test_client()
    login_password(chef, *CHEF)
    page = chef.get("/rules/suggestions").get_data(as_text=True)
    assert "Put a thermometer in the cold well too." in page and "Cook Sam" in page
    review = chef.get("/rules/review").get_data(as_text=True)
    assert "suggestions: 1" in review.split('data-testid="evidence-R2"')[1].split("</p>")[0]
    with app.app_context():
        from app.models import RuleSuggestion
        suggestion_id = db.session.execute(select(RuleSuggestion.id)).scalar_one()
    admin = app.test_client()
    login_password(admin, "admin@test.kitchen", "admin-password")
    admin.post(f"/rules/suggestions/{suggestion_id}/answer", data={"text": "No"})
    chef.post(f"/rules/suggestions/{suggestion_id}/answer",
              data={"text": "Yes: ordered one for the cold well."})
    answered = chef.get("/rules/suggestions").get_data(as_text=True)
    assert "Yes: ordered one for the cold well." in answered and ">No<" not in answered


def test_the_years_evidence_counts_each_rules_answers_in_force_actions_and_suggestions(
        app, kitchen):
    with app.app_context():
        site, chef, cook = _objects(kitchen)
        definition = current_definitions(db.session)[0]
        for day in (DAY, DAY + dt.timedelta(days=1)):
            slot = slots_for_day(definition.schedules, day, site.timezone)[0]
            run = open_run(db.session, site, definition.key, slot, cook, "dev1",
                           now=at_local(day, "11:05"))
            for item in run.definition.items:
                value = {"passfail": "pass", "temperature": "3.2", "time": "11:30"}[item.kind]
                record_answer(db.session, run, item, cook, "dev1", value=value)
                if item.key == "spills_wiped" and day == DAY:  # corrected to a fail, with a fix
                    record_answer(db.session, run, item, cook, "dev1", value="fail",
                                  corrective_action="Wiped again with a clean cloth")
            submit_run(db.session, run, cook, "dev1")
        set_clock(lambda: at_local(DAY, "15:00"))
        suggest(db.session, cook, site, "R4", "Keep a cloth at the pass.")
        suggest(db.session, cook, site, None, "A rule for allergens.")
        db.session.commit()
        figures = evidence(db.session, site, at_local(DAY, "00:00"),
                           at_local(DAY + dt.timedelta(days=2), "00:00"))
        assert figures["R4"] == {"pass": 1, "fail": 1, "na": 0, "actions": 1, "alerts": 0,
                                 "discarded": 0, "timers": 0, "suggestions": 1,
                                 "fail_rate": 50.0}
        assert (figures["R2"]["pass"], figures["R2"]["fail"]) == (4, 0)  # two items each day
        assert figures["new"]["suggestions"] == 1
        only_first = evidence(db.session, site, at_local(DAY, "00:00"),
                              at_local(DAY, "23:59"))
        assert (only_first["R4"]["pass"], only_first["R4"]["fail"]) == (0, 1)


def test_an_old_run_reads_the_rule_that_applied_when_it_was_done(app, kitchen):
    with app.app_context():
        site, _chef, _cook = _objects(kitchen)
        first = current_version(db.session, site)
        db.session.commit()
        then = first.published_at + dt.timedelta(minutes=1)
        set_clock(lambda: then + dt.timedelta(days=1))
        second = _review_and_publish(kitchen)
        assert version_in_force(db.session, site, then).id == first.id
        assert version_in_force(db.session, site, second.published_at).id == second.id


def test_year_after_keeps_the_date_and_moves_29_february_to_the_28th():
    assert year_after(dt.date(2027, 3, 14)) == dt.date(2028, 3, 14)
    assert year_after(dt.date(2028, 2, 29)) == dt.date(2029, 2, 28)


@pytest.mark.parametrize("created_local,due", [
    ("2027-03-14 09:00", dt.date(2028, 3, 14)),   # due the day DST begins in New York
    ("2028-02-29 09:00", dt.date(2029, 2, 28)),   # a leap day
])
def test_review_reminders_come_30_and_7_days_before_on_the_day_then_go_to_the_owner_once(
        app, kitchen, created_local, due):
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("America/New_York")
    created = dt.datetime.strptime(created_local, "%Y-%m-%d %H:%M").replace(tzinfo=tz)
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        site.timezone = "America/New_York"
        site.created_at = created.astimezone(UTC)
        owner = Staff(site=site, name="Olga Owner", role=Role.OWNER, email="olga@test.kitchen")
        db.session.add(owner)
        db.session.commit()
        assert review_due(db.session, site) == (due, None)

        def run_at(day: dt.date, hhmm: str) -> list[str]:
            moment = dt.datetime.combine(day, dt.time(*map(int, hhmm.split(":"))),
                                         tzinfo=tz).astimezone(UTC)
            alerts = remind_review(db.session, moment)
            db.session.commit()
            return [a.detail["reminder"] for a in alerts]

        before30 = due - dt.timedelta(days=30)
        assert run_at(before30 - dt.timedelta(days=1), "23:30") == []  # not yet, local time
        assert run_at(before30, "00:30") == ["30_days"]
        assert run_at(before30, "12:00") == []                       # once
        assert run_at(due - dt.timedelta(days=8), "23:59") == []
        assert run_at(due - dt.timedelta(days=7), "00:01") == ["7_days"]
        assert run_at(due, "00:10") == ["due"]
        assert run_at(due, "23:50") == []
        assert run_at(due + dt.timedelta(days=1), "01:00") == ["overdue"]
        assert run_at(due + dt.timedelta(days=3), "01:00") == []      # escalates once
        overdue = db.session.execute(select(Alert).where(Alert.subject.like("%:overdue"))
                                     ).scalar_one()
        assert overdue.state.escalation_level == 2 and overdue.state.tier == "critical"
        assert [e.kind for e in db.session.execute(select(AlertEvent).where(
            AlertEvent.alert_id == overdue.id)).scalars()] == ["escalated"]
        app.config["BRIGADE_SMTP_HOST"] = "mail.invalid"  # queued only; nothing is sent here
        notify_due(db.session, overdue.opened_at)
        db.session.commit()
        told = set(db.session.execute(select(Notification.target).where(
            Notification.alert_id == overdue.id)).scalars())
        assert "olga@test.kitchen" in told and "chef@test.kitchen" in told
        # The head chef signs the review off: every open reminder is resolved, the year restarts.
        set_clock(lambda: overdue.opened_at + dt.timedelta(hours=2))
        _review_and_publish(kitchen)
        open_left = db.session.execute(select(Alert).where(
            Alert.subject.like(f"site:{site.id}:review:%"))).scalars().all()
        assert all(a.state.status == "resolved" for a in open_left)
        assert review_due(db.session, site)[0] == year_after(
            (overdue.opened_at + dt.timedelta(hours=2)).astimezone(tz).date())
        assert audit.verify(db.session)[1] == []


def test_a_runs_record_shows_each_items_rule_as_worded_when_the_run_was_done(app, kitchen):
    with app.app_context():
        site, _chef, cook = _objects(kitchen)
        definition = current_definitions(db.session)[0]
        slot = slots_for_day(definition.schedules, DAY, site.timezone)[0]
        run = open_run(db.session, site, definition.key, slot, cook, "dev1",
                       now=at_local(DAY, "11:05"))
        db.session.commit()
        run_id = run.id
        plated = next(i.id for i in run.definition.items if i.rule_code == "R3")
        _review_and_publish(kitchen)  # today, after the run: R3 now reads "…and labelled"
    chef = app.test_client()
    login_password(chef, *CHEF)
    page = chef.get(f"/records/runs/{run_id}").get_data(as_text=True)
    line = page.split(f'data-testid="rule-then-{plated}">')[1].split("</span>")[0]
    assert line.startswith("Plating on time:") and "labelled" not in line


def test_the_report_shows_the_rules_in_force_the_review_and_who_has_not_read(app, kitchen):
    with app.app_context():
        version = _review_and_publish(kitchen)
        cook = db.session.get(Staff, kitchen["cook"])
        for code in version.changed:
            from app.rules.operations import acknowledge
            acknowledge(db.session, cook, version, code)
        site, _chef, _cook = _objects(kitchen)
        suggest(db.session, cook, site, "R2", "A thermometer in the cold well.")
        db.session.commit()
    chef = app.test_client()
    login_password(chef, *CHEF)
    page = chef.get("/reports?range=today").get_data(as_text=True)
    status = page.split('data-testid="rules-status"')[1].split("</section>")[0]
    assert "Version 2 in force" in status and "1 staff suggestions not answered" in status
    not_read = status.split('data-testid="not-read">')[1].split("</li>")[0]
    assert "Cook Li" in not_read and "Cook Sam" not in not_read
    rules = page.split('data-testid="rules"')[1].split("</table>")[0]
    assert "Plating on time, and labelled" in rules and "(store rule)" in rules
    assert "Allergens" in rules and "Wiping spills" not in rules


def test_a_refused_suggestion_keeps_what_the_cook_wrote(app, kitchen):
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    refused = cook.post("/rules/suggest", data={"rule": "R9", "text": "Label the squid tray."})
    assert refused.status_code == 400 and "Label the squid tray." in refused.get_data(True)


# --- the checklists follow the site's rules ---------------------------------------------------

ITEMS_REVIEW = {
    # R2 amended by its items only: a store item for the cold well, one default item off.
    "decision_R2": "keep", "remove__serving_hygiene:cold_held_chilled": "1",
    "item_R2_checklist": "serving_hygiene", "item_R2_kind": "temperature",
    "item_R2_text_en": "Cold well temperature", "item_R2_text_zh": "冷藏台温度",
    "item_R2_max": "5", "item_R2_critical": "1",
    "decision_R5": "retire",
    # A new store rule with an item of its own.
    **NEW_RULE, "item_new_checklist": "serving_hygiene", "item_new_kind": "passfail",
    "item_new_text_en": "Allergen dishes plated apart", "item_new_text_zh": "过敏原菜点单独装盘",
    "summary": "Cold well checked; utensils rule folded into R6; allergens added."}


COLD_HELD_EN = "Cold dishes stay in the refrigerator or on chilled equipment"


def _retire_r5(site, chef):
    """A review that retires R5 (the utensils rule), signed off."""
    review = start_review(db.session, site, chef)
    save_review(db.session, review, chef, {"decision_R5": "retire", "summary": "R5 out"})
    version = publish_review(db.session, review, chef, "dev1")
    db.session.commit()
    return version


def _item_keys(definition):
    return [(i.key, i.rule_code) for i in definition.items]


def test_a_review_takes_retired_and_removed_items_off_and_puts_store_items_on_the_checklist(
        app, kitchen):
    with app.app_context():
        site, chef, cook = _objects(kitchen)
        other = Site(name="Other Kitchen", timezone="Europe/London", temp_unit="C")
        db.session.add(other)
        db.session.commit()
        default = current_definitions(db.session)[0]
        slot = slots_for_day(default.schedules, DAY, site.timezone)[0]
        old_run = open_run(db.session, site, default.key, slot, cook, "dev1",
                           now=at_local(DAY, "11:05"))
        db.session.commit()
        review = start_review(db.session, site, chef)
        assert save_review(db.session, review, chef, dict(ITEMS_REVIEW)) == {}
        assert review.decisions["R2"]["decision"] == "amend"  # items changed: an amendment
        version = publish_review(db.session, review, chef, "dev1")
        db.session.commit()
        r2 = next(r for r in version.rules if r["code"] == "R2")
        assert r2["source"] == "default"  # wording unchanged: still the default rule
        assert r2["removed_items"] == ["serving_hygiene:cold_held_chilled"]
        assert [(i["key"], i["max_c"], i["critical"]) for i in r2["items"]] == [
            ("r2-1", 5.0, True)]
        assert version.changed == ["R2", "R5", "S1"]

        mine = current_definitions(db.session, site.id)[0]
        assert (mine.site_id, mine.base_id, mine.rules_version_id) == (
            site.id, default.id, version.id)
        keys = _item_keys(mine)
        assert ("utensils_used", "R5") not in keys and ("cold_held_chilled", "R2") not in keys
        assert keys[-2:] == [("r2-1", "R2"), ("s1-1", "S1")]
        assert len(keys) == len(default.items) - 2 + 2
        cold_well = next(i for i in mine.items if i.key == "r2-1")
        assert (cold_well.kind, cold_well.temp_max_c, cold_well.text_zh) == (
            "temperature", 5.0, "冷藏台温度")
        # Another site, and the defaults, are untouched; the old run keeps its version.
        assert current_definitions(db.session, other.id)[0].id == default.id
        assert current_definitions(db.session)[0].id == default.id
        assert db.session.get(type(old_run), old_run.id).definition_id == default.id

        # A run opened now works from the site's version: its new items must be answered.
        later = slots_for_day(mine.schedules, DAY, site.timezone)[1]
        run = open_run(db.session, site, mine.key, later, cook, "dev1",
                       now=later.start + dt.timedelta(minutes=5))
        assert run.definition_id == mine.id
        for item in run.definition.items:
            if item.key != "s1-1":
                value = {"passfail": "pass", "temperature": "3.2", "time": "11:30"}[item.kind]
                record_answer(db.session, run, item, cook, "dev1", value=value)
        with pytest.raises(OperationError):
            submit_run(db.session, run, cook, "dev1")
        allergen = next(i for i in run.definition.items if i.key == "s1-1")
        record_answer(db.session, run, allergen, cook, "dev1", value="fail",
                      corrective_action="Re-plated apart")
        assert record_answer(db.session, run, cold_well, cook, "dev1", value="6",
                             corrective_action="Ice added to the well").outcome == "fail"
        submit_run(db.session, run, cook, "dev1")
        db.session.commit()
        figures = evidence(db.session, site, at_local(DAY, "00:00"), at_local(DAY, "23:59"))
        assert (figures["S1"]["fail"], figures["S1"]["actions"]) == (1, 1)
        assert audit.verify(db.session)[1] == []  # the site's version is chained

    chef_client = app.test_client()
    login_password(chef_client, *CHEF)
    rules = chef_client.get("/rules").get_data(as_text=True)
    s1 = rules.split('data-testid="rule-S1"')[1].split("</article>")[0]
    assert "Allergen dishes plated apart" in s1
    assert "Cold well temperature" in rules.split('data-testid="rule-R2"')[1].split("</article>")[0]
    diff = chef_client.get("/rules/diff?to=2").get_data(as_text=True)
    r2_diff = diff.split('data-testid="diff-R2"')[1].split("</article>")[0]
    assert 'data-status="amended"' in diff.split('data-testid="diff-R2"')[1][:40]
    added = r2_diff.split('data-testid="item-added-R2"')[1].split("</p>")[0]
    removed = r2_diff.split('data-testid="item-removed-R2"')[1].split("</p>")[0]
    assert "Cold well temperature" in added and "Serving hygiene" in added
    assert "Item taken off" in removed and COLD_HELD_EN in removed
    kept = chef_client.get("/rules/versions/2").get_data(as_text=True)
    assert "Default items taken off" in kept and "Cold well temperature" in kept
    report = chef_client.get(f"/reports?start={DAY.isoformat()}&end={DAY.isoformat()}")
    by_rule = report.get_data(as_text=True)
    assert report.status_code == 200 and "S1" in by_rule


def test_a_changed_default_checklist_is_followed_by_the_sites_own_version(app, kitchen,
                                                                          tmp_path):
    import shutil

    from app.checklists.definitions import DEFINITIONS_DIR, load_all
    with app.app_context():
        site, chef, _cook = _objects(kitchen)
        _retire_r5(site, chef)
        folder = tmp_path / "checklists"
        shutil.copytree(DEFINITIONS_DIR, folder)
        path = folder / "serving_hygiene.yaml"
        before = path.read_text(encoding="utf-8")
        path.write_text(before.replace("against dust, flies", "against dust and flies", 1),
                        encoding="utf-8")
        assert path.read_text(encoding="utf-8") != before
        first_default = current_definitions(db.session)[0]
        results = load_all(db.session, folder)
        db.session.commit()
        newest_default = current_definitions(db.session)[0]
        assert [(r.key, r.status) for r in results if r.status.startswith("made")] == [
            ("serving_hygiene", f"made for site {site.id}")]
        assert newest_default.id != first_default.id
        mine = current_definitions(db.session, site.id)[0]
        assert mine.base_id == newest_default.id and mine.version > newest_default.version
        assert "against dust and flies" in next(i.text_en for i in mine.items
                                                if i.key == "covered")
        assert "utensils_used" not in [i.key for i in mine.items]  # still retired here
        assert "utensils_used" in [i.key for i in newest_default.items]
        assert audit.verify(db.session)[1] == []


def test_a_review_that_would_empty_a_checklist_or_adds_a_bad_item_is_refused(app, kitchen):
    with app.app_context():
        site, chef, _cook = _objects(kitchen)
        review = start_review(db.session, site, chef)
        errors = save_review(db.session, review, chef, {
            "item_R1_checklist": "serving_hygiene", "item_R1_kind": "temperature",
            "item_R1_text_en": "Lid temperature", "item_R1_text_zh": "盖子温度",
            "item_R1_max": "warm"})
        assert "warm is not a temperature" in errors["item_R1"]
        errors = save_review(db.session, review, chef, {
            "item_R1_checklist": "nowhere", "item_R1_kind": "passfail",
            "item_R1_text_en": "Lid on", "item_R1_text_zh": "盖好"})
        assert "item_R1" in errors
        errors = save_review(db.session, review, chef, {
            "item_R1_checklist": "serving_hygiene", "item_R1_kind": "passfail",
            "item_R1_text_en": "Lid on", "item_R1_text_zh": ""})
        assert "in English and in Chinese" in errors["item_R1"]
        assert review.decisions["R1"]["decision"] == "keep"  # nothing half-added
        everything = {f"decision_R{n}": "retire" for n in range(1, 9)}
        assert save_review(db.session, review, chef, {**everything, "summary": "all out"}) == {}
        with pytest.raises(OperationError, match="no items"):
            publish_review(db.session, review, chef, "dev1")
        db.session.rollback()
        assert current_definitions(db.session, site.id)[0].site_id is None


def test_a_suggestion_can_bring_a_photo_that_only_its_site_sees(app, kitchen):
    import base64
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQ"
                           "DwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
    from io import BytesIO
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    response = cook.post("/rules/suggest", data={
        "rule": "R8", "text": "The tongs rack is broken.",
        "photo": (BytesIO(png), "rack.png")}, content_type="multipart/form-data")
    assert response.status_code == 302
    refused = cook.post("/rules/suggest", data={
        "rule": "R8", "text": "Again", "photo": (BytesIO(b"not an image"), "x.txt")},
        content_type="multipart/form-data")
    assert refused.status_code == 400 and "not a photo" in refused.get_data(as_text=True)
    chef = app.test_client()
    login_password(chef, *CHEF)
    page = chef.get("/rules/suggestions").get_data(as_text=True)
    assert "The tongs rack is broken." in page and "Again" not in page
    src = page.split('data-testid="suggestion-photo-')[0].rsplit('src="', 1)[1].split('"')[0]
    photo = chef.get(src)
    assert photo.status_code == 200 and photo.data == png
    assert cook.get(src).status_code == 200  # its author
    other_cook = app.test_client()
    login_pin(other_cook, kitchen["cook2"], Kitchen.PINS["cook2"])
    assert other_cook.get(src).status_code == 404  # suggestions are the head chef's to read
    with app.app_context():
        from app.models import RuleSuggestion
        suggestion = db.session.execute(select(RuleSuggestion)).scalar_one()
        assert suggestion.photo_id is not None
        assert audit.verify(db.session)[1] == []
        other = Site(name="Other Kitchen", timezone="Europe/London", temp_unit="C")
        db.session.add(other)
        db.session.flush()
        outsider = Staff(site=other, name="Chef Other", role=Role.HEAD_CHEF,
                         email="other@test.kitchen")
        outsider.set_password("other-password-1")
        db.session.add(outsider)
        db.session.commit()
    stranger = app.test_client()
    login_password(stranger, "other@test.kitchen", "other-password-1")
    assert stranger.get(src).status_code == 404


def test_an_alert_shows_the_rule_it_tells_of_as_the_site_kept_it_when_it_opened(app, kitchen):
    from app.alerts.operations import raise_alert
    with app.app_context():
        site, chef, _cook = _objects(kitchen)
        current_version(db.session, site)
        db.session.commit()
        before = raise_alert(db.session, site_id=site.id, kind="temperature",
                             subject="unit:99:before", detail={"title": "Too warm"})
        db.session.commit()
        set_clock(lambda: before.opened_at + dt.timedelta(hours=1))
        review = start_review(db.session, site, chef)
        assert save_review(db.session, review, chef, {
            "decision_R2": "amend", "title_R2_en": "Cold holding at 5 °C",
            "title_R2_zh": "冷藏保持5°C", "text_R2_en": "Cold dishes stay at 5 °C or below.",
            "text_R2_zh": "冷食保持在5°C以下。", "summary": "A number for cold holding"}) == {}
        publish_review(db.session, review, chef, "dev1")
        db.session.commit()
        set_clock(lambda: before.opened_at + dt.timedelta(hours=2))
        after = raise_alert(db.session, site_id=site.id, kind="temperature",
                            subject="unit:99:after", detail={"title": "Too warm"})
        overdue = raise_alert(db.session, site_id=site.id, kind="checklist_overdue",
                              subject="site:1:checklist:x", detail={"title": "Late"})
        db.session.commit()
        ids = before.id, after.id, overdue.id
    chef_client = app.test_client()
    login_password(chef_client, *CHEF)
    old = chef_client.get(f"/alerts/{ids[0]}").get_data(as_text=True)
    rule = old.split('data-testid="alert-rule"')[1].split("</section>")[0]
    assert "Cold dishes are kept in the refrigerator" in rule and "Default rule" in rule
    new = chef_client.get(f"/alerts/{ids[1]}").get_data(as_text=True)
    rule = new.split('data-testid="alert-rule"')[1].split("</section>")[0]
    assert "Cold dishes stay at 5 °C or below." in rule and "冷食保持在5°C以下。" in rule
    assert "Store rule: prevails over default rule R2" in rule
    assert 'data-testid="alert-rule"' not in chef_client.get(f"/alerts/{ids[2]}").get_data(True)


def _defaults_with_a_new_rule_and_checklist(folder):
    """The shipped definitions plus rule R9 (with an item on the serving checklist) and a new
    checklist whose one item checks R5."""
    import shutil

    import yaml

    from app.checklists.definitions import DEFINITIONS_DIR
    shutil.copytree(DEFINITIONS_DIR, folder)
    rules = yaml.safe_load((folder / "rules.yaml").read_text(encoding="utf-8"))
    rules["rules"].append({"code": "R9", "number": 9, "title": {"en": "Allergens", "zh": "过敏原"},
                           "text": {"en": "Allergen dishes are plated apart.",
                                    "zh": "含过敏原的菜点单独装盘。"}})
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules, allow_unicode=True), "utf-8")
    serving = yaml.safe_load((folder / "serving_hygiene.yaml").read_text(encoding="utf-8"))
    serving["items"].append({"key": "allergens_apart", "rule": "R9", "kind": "passfail",
                             "text": {"en": "Allergen dishes plated apart",
                                      "zh": "过敏原菜点单独装盘"}})
    (folder / "serving_hygiene.yaml").write_text(yaml.safe_dump(serving, allow_unicode=True),
                                                 "utf-8")
    tools = {"key": "tools", "title": {"en": "Serving tools", "zh": "分菜工具"},
             "schedules": serving["schedules"][:1],
             "items": [{"key": "tongs", "rule": "R5", "kind": "passfail",
                        "text": {"en": "Tongs at every dish", "zh": "每道菜都有夹子"}}]}
    (folder / "tools.yaml").write_text(yaml.safe_dump(tools, allow_unicode=True), "utf-8")


def test_new_default_rules_and_checklists_reach_every_site_but_what_it_retired(app, kitchen,
                                                                             tmp_path):
    from app.checklists.definitions import load_all
    from app.rules.operations import rules_in_force
    with app.app_context():
        site, chef, _cook = _objects(kitchen)
        other = Site(name="Other Kitchen", timezone="Europe/London", temp_unit="C")
        db.session.add(other)
        db.session.flush()
        current_version(db.session, other)
        _retire_r5(site, chef)
        _defaults_with_a_new_rule_and_checklist(tmp_path / "defs")
        load_all(db.session, tmp_path / "defs")  # not refused: a site's checklist may be empty
        db.session.commit()
        mine = {d.key: d for d in current_definitions(db.session, site.id)}
        theirs = {d.key: d for d in current_definitions(db.session, other.id)}
        assert set(mine) == {"serving_hygiene"} and set(theirs) == {"serving_hygiene", "tools"}
        keys = [i.key for i in mine["serving_hygiene"].items]
        assert "allergens_apart" in keys and "utensils_used" not in keys  # new rule in, R5 out
        assert "allergens_apart" in [i.key for i in theirs["serving_hygiene"].items]
        assert "R9" in rules_in_force(db.session, site)  # its tip reads on the tablet
        # The next review walks R9 too; kept, it joins the site's version and is read by all.
        review = start_review(db.session, site, chef)
        assert "R9" in review.decisions
        save_review(db.session, review, chef, {"summary": "R9 adopted"})
        version = publish_review(db.session, review, chef, "dev1")
        db.session.commit()
        assert "R9" in [r["code"] for r in version.rules] and "R9" in version.changed
        assert audit.verify(db.session)[1] == []


def test_a_sites_checklist_version_is_chained_with_its_site(app, kitchen):
    from sqlalchemy import update

    from app.models import ChecklistDefinition
    with app.app_context():
        site, chef, _cook = _objects(kitchen)
        _retire_r5(site, chef)
        mine = current_definitions(db.session, site.id)[0]
        db.session.execute(update(ChecklistDefinition).where(ChecklistDefinition.id == mine.id)
                           .values(site_id=None))  # handed to every site, behind the app's back
        db.session.commit()
        problems = audit.verify(db.session)[1]
        assert any(f"checklist_definitions {mine.id}" in p.where and "site_id" in p.what
                   for p in problems), problems


def test_a_review_shown_again_for_a_mistake_keeps_each_item_once(app, kitchen):
    chef = app.test_client()
    login_password(chef, *CHEF)
    item = {"item_R2_checklist": "serving_hygiene", "item_R2_kind": "passfail",
            "item_R2_text_en": "Cold well lid closed", "item_R2_text_zh": "冷藏台盖好"}
    bad = {**AMEND_R3, "title_R3_en": "", **item, "action": "save"}
    page = chef.post("/rules/review", data=bad)
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert 'data-testid="pending-R2-0"' in html and "Cold well lid closed" in html
    assert 'name="item_R2_text_en" class="text-input" maxlength="500" value=""' in html
    assert 'value="Plating on time, and labelled"' not in html  # the emptied title stays empty
    # Sent again as shown (the title now filled in): still one item.
    assert chef.post("/rules/review", data={**AMEND_R3, "action": "save"}).status_code == 302
    with app.app_context():
        from app.models import RuleReview
        review = db.session.execute(select(RuleReview)).scalar_one()
        assert [i["text"]["en"] for i in review.decisions["R2"]["add_items"]] == [
            "Cold well lid closed"]
    # Enter in a field presses the form's first button: "save", never a "Remove".
    html = chef.get("/rules/review").get_data(as_text=True)
    form = html.split('data-testid="review-form"')[1]
    assert form.index('name="action" value="save"') < form.index('name="drop_item_R2"')


def test_a_suggestions_photo_over_the_limit_is_refused_on_the_form(app, kitchen):
    from io import BytesIO
    app.config.update(MAX_CONTENT_LENGTH=100_000, BRIGADE_PHOTO_MAX_BYTES=100_000)
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    response = cook.post("/rules/suggest", data={
        "rule": "R8", "text": "Big photo", "photo": (BytesIO(b"\x89PNG" + b"0" * 300_000),
                                                      "big.png")},
        content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 413
    assert "That photo is too large (the limit is 0.1 MB)" in page
    assert 'data-testid="suggest-form"' in page  # the form again, to send without it
    with app.app_context():
        from app.models import RuleSuggestion
        assert db.session.execute(select(RuleSuggestion)).first() is None
