"""People and sites in the app: who may add, change and deactivate whom, PINs and passwords
shown once, everything scoped to one's sites, and every change chained."""
from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from app import audit
from app.checklists.definitions import current_definitions
from app.checklists.operations import open_run, record_answer, submit_run, verify_run
from app.checklists.schedules import slots_for_day
from app.errors import OperationError
from app.models import Change, Role, Run, Site, Staff, db
from tests.factories import Kitchen, at_local, login_password, login_pin

ADMIN = ("admin@test.kitchen", "admin-password")
CHEF = ("chef@test.kitchen", "chef-password")


DAY = dt.date(2026, 11, 27)


def _run(kitchen, submit: bool) -> int:
    """A run of the day's first slot answered by the cook (submitted if ``submit``); its id.
    Needs an app context."""
    site = db.session.get(Site, kitchen["site"])
    cook = db.session.get(Staff, kitchen["cook"])
    definition = current_definitions(db.session)[0]
    slot = slots_for_day(definition.schedules, DAY, site.timezone)[0]
    run = open_run(db.session, site, definition.key, slot, cook, "dev1",
                   now=at_local(DAY, "11:05"))
    for item in run.definition.items:
        value = {"passfail": "pass", "temperature": "3.2", "time": "11:30"}.get(item.kind)
        if value:
            record_answer(db.session, run, item, cook, "dev1", value=value)
    if submit:
        submit_run(db.session, run, cook, "dev1")
    db.session.commit()
    return run.id


def _shown(response, what: str) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.headers["Cache-Control"] == "no-store"
    match = re.search(rf'data-testid="new-{what}">([^<]+)<', response.get_data(as_text=True))
    assert match, f"no {what} shown"
    return match.group(1)


def _add(client, **form):
    return client.post("/people/new", data={"language": "en", **form})


def test_an_admin_adds_a_head_chef_and_cooks_whose_pin_and_password_are_shown_once_and_work(
        app, kitchen):
    admin = app.test_client()
    assert login_password(admin, *ADMIN).status_code == 302
    response = _add(admin, name="Wei Head", role="head_chef", email="Wei@Example.com",
                    site=str(kitchen["site"]))
    pin, password = _shown(response, "pin"), _shown(response, "password")
    assert re.fullmatch(r"\d{6}", pin)  # the site's policy for new PINs: 6 digits by default
    with app.app_context():
        wei = db.session.execute(select(Staff).where(Staff.name == "Wei Head")).scalar_one()
        wei_id = wei.id
        assert (wei.role, wei.email, wei.site_id) == (Role.HEAD_CHEF, "wei@example.com",
                                                      kitchen["site"])
        assert pin not in (wei.pin_hash or "") and password not in (wei.password_hash or "")
    # Never shown again: the person's page has no secret on it.
    page = admin.get(f"/people/{wei_id}").get_data(as_text=True)
    assert pin not in page and password not in page and "Wei Head" in page
    cook = _shown(_add(admin, name="Ana Cook", role="cook", site=str(kitchen["site"])), "pin")
    with app.app_context():
        ana = db.session.execute(select(Staff).where(Staff.name == "Ana Cook")).scalar_one()
        ana_id = ana.id
        assert ana.email is None and ana.password_hash is None
    # Each signs in: the head chef with email and password, and on the tablet with the PIN.
    assert login_password(app.test_client(), "wei@example.com", password).status_code == 302
    tablet = app.test_client()
    assert login_pin(tablet, wei_id, pin).status_code == 302
    assert login_pin(app.test_client(), ana_id, cook).status_code == 302
    assert login_pin(app.test_client(), ana_id, "000000").status_code == 401
    # Both additions are chained changes, with who added them, and the chain verifies.
    with app.app_context():
        changes = db.session.execute(select(Change).where(Change.subject.like("staff:%"))
                                     .order_by(Change.id)).scalars().all()
        assert [(c.action, c.subject, c.actor_id) for c in changes] == [
            ("staff.added", f"staff:{wei_id}", kitchen["admin"]),
            ("staff.added", f"staff:{ana_id}", kitchen["admin"])]
        assert json.loads(changes[0].data)["role"] == [None, "head_chef"]
        assert pin not in changes[1].data and password not in changes[0].data
        assert audit.verify(db.session)[1] == []


def test_a_head_chef_looks_after_their_own_cooks_and_no_one_else(app, kitchen):
    chef = app.test_client()
    login_password(chef, *CHEF)
    assert chef.get("/people").status_code == 200
    pin = _shown(_add(chef, name="New Cook", role="cook", site=str(kitchen["site"])), "pin")
    assert len(pin) == 6
    # Not a head chef or admin: the form does not offer it and the server refuses it.
    form = chef.get("/people/new").get_data(as_text=True)
    assert 'value="cook"' in form and 'value="head_chef"' not in form
    refused = _add(chef, name="Sneaky", role="admin", email="x@example.com",
                   site=str(kitchen["site"]))
    assert refused.status_code == 400 and "may not give this role" in refused.get_data(True)
    # Not the admin, not themselves, not anyone of another site.
    assert chef.get(f"/people/{kitchen['admin']}/edit").status_code == 403
    assert chef.post(f"/people/{kitchen['admin']}/deactivate").status_code == 403
    assert chef.post(f"/people/{kitchen['chef']}/pin").status_code == 403
    with app.app_context():
        other = Site(name="Other Kitchen", timezone="UTC")
        stranger = Staff(site=other, name="Far Cook", role=Role.COOK)
        db.session.add_all([other, stranger])
        db.session.commit()
        stranger_id, other_id = stranger.id, other.id
    assert chef.get(f"/people/{stranger_id}").status_code == 404
    assert chef.post(f"/people/{stranger_id}/deactivate").status_code == 404
    assert _add(chef, name="Elsewhere", role="cook", site=str(other_id)).status_code == 400
    assert chef.get("/sites").status_code == 403
    # A cook manages no one.
    cook = app.test_client()
    login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"])
    assert cook.get("/people").status_code == 403


def test_a_pin_on_the_shared_tablet_does_not_open_people_or_sites(app, kitchen):
    tablet = app.test_client()
    assert login_pin(tablet, kitchen["admin"], Kitchen.PINS["admin"]).status_code == 302
    for url in ("/people", "/people/new", "/sites", f"/people/{kitchen['cook']}"):
        assert tablet.get(url).status_code == 403, url
    assert tablet.post(f"/people/{kitchen['cook']}/pin").status_code == 403
    assert "nav-settings" not in tablet.get("/").get_data(as_text=True)


def test_deactivating_stops_the_pin_and_an_old_cookie_at_once_and_records_keep_the_name(
        app, kitchen):
    cook = app.test_client()
    assert login_pin(cook, kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    assert cook.get("/").status_code == 200
    with app.app_context():
        run_id = _run(kitchen, submit=False)
    admin = app.test_client()
    login_password(admin, *ADMIN)
    response = admin.post(f"/people/{kitchen['cook']}/deactivate", follow_redirects=True)
    assert "can no longer sign in" in response.get_data(as_text=True)
    # The cookie from before is refused, the PIN is refused, the PIN pad no longer lists them.
    assert cook.get("/").status_code in (302, 401)
    assert login_pin(app.test_client(), kitchen["cook"], Kitchen.PINS["cook"]).status_code == 404
    assert "Cook Sam" not in app.test_client().get("/pin").get_data(as_text=True)
    # Their records keep their name.
    chef = app.test_client()
    login_password(chef, *CHEF)
    assert "Cook Sam" in chef.get(f"/records/runs/{run_id}").get_data(as_text=True)
    # And they are listed, deactivated, with what they did.
    page = admin.get(f"/people/{kitchen['cook']}").get_data(as_text=True)
    assert "deactivated" in page and "Answered a checklist item" in page
    # Back at work: the PIN works again.
    admin.post(f"/people/{kitchen['cook']}/reactivate")
    assert login_pin(app.test_client(), kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    with app.app_context():
        actions = db.session.execute(select(Change.action).where(
            Change.subject == f"staff:{kitchen['cook']}").order_by(Change.id)).scalars().all()
        assert actions == ["staff.deactivated", "staff.reactivated"]


def test_a_new_pin_follows_the_sites_length_and_ends_the_old_pin_and_sessions(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    tablet = app.test_client()
    login_pin(tablet, kitchen["cook"], Kitchen.PINS["cook"])
    response = admin.post(f"/sites/{kitchen['site']}/edit", data={
        "name": "Test Kitchen", "timezone": "Europe/London", "language": "en", "temp_unit": "C",
        "pin_length": "8"})
    assert response.status_code == 302
    pin = _shown(admin.post(f"/people/{kitchen['cook']}/pin"), "pin")
    assert re.fullmatch(r"\d{8}", pin)
    assert tablet.get("/").status_code in (302, 401)  # the session from the old PIN ended
    assert login_pin(app.test_client(), kitchen["cook"], Kitchen.PINS["cook"]).status_code == 401
    assert login_pin(app.test_client(), kitchen["cook"], pin).status_code == 302
    for bad in ("3", "9", "six", ""):
        refused = admin.post(f"/sites/{kitchen['site']}/edit", data={
            "name": "Test Kitchen", "timezone": "Europe/London", "language": "en",
            "temp_unit": "C", "pin_length": bad})
        assert refused.status_code == 400 and "4 to 8 digits" in refused.get_data(True)


def test_a_new_password_works_once_given_and_the_person_then_chooses_their_own(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    old_session = app.test_client()
    login_password(old_session, *CHEF)
    password = _shown(admin.post(f"/people/{kitchen['chef']}/password"), "password")
    assert old_session.get("/records").status_code == 302  # signed out everywhere
    assert login_password(app.test_client(), *CHEF).status_code == 401
    chef = app.test_client()
    assert login_password(chef, CHEF[0], password).status_code == 302
    differ = chef.post("/me/password", data={"current": password, "new": "my own words 1",
                                             "again": "my own words 2"})
    assert differ.status_code == 400
    short = chef.post("/me/password", data={"current": password, "new": "short",
                                            "again": "short"})
    assert short.status_code == 400 and "at least 10" in short.get_data(True)
    done = chef.post("/me/password", data={"current": password, "new": "my own words 1",
                                           "again": "my own words 1"})
    assert done.status_code == 302
    assert login_password(app.test_client(), CHEF[0], "my own words 1").status_code == 302
    # A cook has no password to reset.
    assert admin.post(f"/people/{kitchen['cook']}/password",
                      follow_redirects=True).get_data(True).count("PIN only") == 1


def test_the_admin_assigns_the_head_chef_and_only_a_head_chef_signs_off(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    response = admin.post(f"/people/{kitchen['cook2']}/edit", data={
        "name": "Cook Li", "role": "head_chef", "language": "zh", "email": "li@test.kitchen",
        "site": str(kitchen["site"])})
    assert response.status_code == 302
    with app.app_context():
        li = db.session.get(Staff, kitchen["cook2"])
        assert li.role == Role.HEAD_CHEF
        change = db.session.execute(select(Change).where(Change.action == "staff.updated")
                                    ).scalar_one()
        assert json.loads(change.data)["role"] == ["cook", "head_chef"]
        run = db.session.get(Run, _run(kitchen, submit=True))
        with pytest.raises(OperationError, match="Only the head chef"):
            verify_run(db.session, run, db.session.get(Staff, kitchen["admin"]), "dev1")
        db.session.rollback()
        verify_run(db.session, run, li, "dev1")
        db.session.commit()


def test_no_one_changes_themselves_and_the_group_keeps_an_admin(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    assert admin.post(f"/people/{kitchen['admin']}/deactivate").status_code == 403
    assert admin.get(f"/people/{kitchen['admin']}/edit").status_code == 403
    with app.app_context():
        from app.people.operations import deactivate, update_person
        owner = Staff(site_id=kitchen["site"], name="Olga Owner", role=Role.OWNER,
                      email="olga@test.kitchen")
        db.session.add(owner)
        db.session.commit()
        site = db.session.get(Site, kitchen["site"])
        alex = db.session.get(Staff, kitchen["admin"])
        # The owner makes the admin a head chef: the owner is the group's last admin, and no
        # one may change themselves.
        update_person(db.session, owner, alex, name=alex.name, role="head_chef",
                      language="en", email=alex.email, site=site)
        db.session.commit()
        with pytest.raises(OperationError, match="may not change"):
            deactivate(db.session, owner, owner)
        # Were the owner deactivated behind the app's back, the last admin could not go.
        owner.active = False
        alex.role = Role.ADMIN
        db.session.commit()
        other = Staff(site_id=kitchen["site"], name="Ola Owner", role=Role.OWNER, active=False)
        db.session.add(other)
        db.session.commit()
        with pytest.raises(OperationError, match="last active admin"):
            deactivate(db.session, other, alex)


def test_sites_are_added_and_changed_by_an_admin_and_every_page_follows_the_chosen_one(
        app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    bad = admin.post("/sites/new", data={"name": "Harbour", "timezone": "Mars/Olympus",
                                         "language": "en", "temp_unit": "K", "pin_length": "6"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Unknown time zone" in text and "C or F" in text
    response = admin.post("/sites/new", data={"name": "Harbour", "timezone": "America/New_York",
                                              "language": "en", "temp_unit": "F",
                                              "pin_length": "4"})
    assert response.status_code == 302
    with app.app_context():
        harbour = db.session.execute(select(Site).where(Site.name == "Harbour")).scalar_one()
        harbour_id = harbour.id
        assert (harbour.timezone, harbour.temp_unit, harbour.pin_length) == (
            "America/New_York", "F", 4)
    # The admin now works on Harbour: its people (none yet), then its first head chef.
    assert "People at Harbour" in admin.get("/people").get_data(as_text=True)
    pin = _shown(_add(admin, name="Hank Chef", role="head_chef", email="hank@example.com",
                      site=str(harbour_id)), "pin")
    assert len(pin) == 4
    # Hank works at Harbour only: Test Kitchen's people and records are not his.
    hank = app.test_client()
    with app.app_context():
        hank_id = db.session.execute(select(Staff.id).where(Staff.name == "Hank Chef")).scalar()
    assert login_pin(hank, hank_id, pin).status_code == 302
    assert hank.get(f"/people/{kitchen['cook']}").status_code == 403  # a PIN session
    # Renamed and moved to another zone: chained with before and after.
    admin.post(f"/sites/{harbour_id}/edit", data={
        "name": "Harbour Grill", "timezone": "America/Chicago", "language": "zh",
        "temp_unit": "F", "pin_length": "4"})
    with app.app_context():
        change = db.session.execute(select(Change).where(Change.action == "site.updated")
                                    ).scalar_one()
        assert json.loads(change.data) == {"name": ["Harbour", "Harbour Grill"],
                                           "timezone": ["America/New_York", "America/Chicago"],
                                           "language": ["en", "zh"]}
    # Back to the first site.
    admin.post(f"/sites/{kitchen['site']}/switch")
    assert "People at Test Kitchen" in admin.get("/people").get_data(as_text=True)


def test_an_owner_sees_every_site_and_a_head_chef_only_their_own(app, kitchen):
    with app.app_context():
        other = Site(name="Riverside", timezone="Asia/Shanghai", temp_unit="C")
        owner = Staff(site_id=kitchen["site"], name="Olga Owner", role=Role.OWNER,
                      email="olga@test.kitchen")
        owner.set_password("owner-password")
        db.session.add_all([other, owner])
        db.session.commit()
        other_id = other.id
    owner_client = app.test_client()
    assert login_password(owner_client, "olga@test.kitchen", "owner-password").status_code == 302
    sites = owner_client.get("/sites").get_data(as_text=True)
    assert "Riverside" in sites and "Test Kitchen" in sites
    owner_client.post(f"/sites/{other_id}/switch")
    assert "People at Riverside" in owner_client.get("/people").get_data(as_text=True)
    assert owner_client.get("/records").status_code == 200
    # An owner may do what an admin does: units and sensors too.
    assert owner_client.get("/units/new").status_code == 200
    assert owner_client.get("/units/sensors").status_code == 200
    chef = app.test_client()
    login_password(chef, *CHEF)
    assert chef.post(f"/sites/{other_id}/switch").status_code == 403
    assert "People at Test Kitchen" in chef.get("/people").get_data(as_text=True)


def test_people_pages_speak_chinese(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    admin.post("/me/language", data={"language": "zh"})
    page = admin.get("/people").get_data(as_text=True)
    assert "添加人员" in page
    assert "停用" in admin.get(f"/people/{kitchen['cook']}").get_data(as_text=True)


def test_settings_gather_what_changes_people_and_settings_by_role(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    page = admin.get("/settings").get_data(as_text=True)
    for entry in ("index", "sites", "settings", "sensors", "dead_letters", "tokens",
                  "my_password"):
        assert f'data-testid="settings-{entry}"' in page, entry
    chef = app.test_client()
    login_password(chef, *CHEF)
    page = chef.get("/settings").get_data(as_text=True)
    assert 'data-testid="settings-index"' in page and 'data-testid="settings-sites"' not in page
    assert 'data-testid="settings-tokens"' not in page
    tablet = app.test_client()
    login_pin(tablet, kitchen["chef"], Kitchen.PINS["chef"])
    assert tablet.get("/settings").status_code == 403


def test_switching_ones_language_leaves_the_chain_intact(app, kitchen):
    admin = app.test_client()
    login_password(admin, *ADMIN)
    pin = _shown(_add(admin, name="Ana Cook", role="cook", site=str(kitchen["site"])), "pin")
    with app.app_context():
        ana_id = db.session.execute(select(Staff.id).where(Staff.name == "Ana Cook")).scalar()
    ana = app.test_client()
    login_pin(ana, ana_id, pin)
    ana.post("/me/language", data={"language": "zh"})
    admin.post(f"/people/{ana_id}/edit", data={"name": "Ana Cook", "role": "cook",
                                               "language": "en", "site": str(kitchen["site"])})
    ana.post("/me/language", data={"language": "zh"})
    admin.post(f"/people/{ana_id}/edit", data={"name": "Ana Costa", "role": "cook",
                                               "language": "zh", "site": str(kitchen["site"])})
    with app.app_context():
        assert db.session.get(Staff, ana_id).name == "Ana Costa"
        assert audit.verify(db.session)[1] == []
        # A rename behind the app's back is named.
        db.session.get(Staff, ana_id).name = "Someone Else"
        db.session.commit()
        assert any(f"staff {ana_id}" in str(p) for p in audit.verify(db.session)[1])


def test_an_owner_compares_every_site_and_opens_one_sites_report(app, kitchen):
    with app.app_context():
        run_id = _run(kitchen, submit=True)  # Test Kitchen: one run done (late: 27 Nov, 11:05)
        other = Site(name="Riverside", timezone="Asia/Shanghai", temp_unit="C")
        owner = Staff(site_id=kitchen["site"], name="Olga Owner", role=Role.OWNER,
                      email="olga@test.kitchen")
        owner.set_password("owner-password")
        db.session.add_all([other, owner])
        db.session.commit()
        other_id, run_day = other.id, DAY.isoformat()
    assert run_id
    owner_client = app.test_client()
    login_password(owner_client, "olga@test.kitchen", "owner-password")
    page = owner_client.get(f"/reports/group?range=custom&first={run_day}&last={run_day}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    ours = html.split(f'data-testid="group-{kitchen["site"]}"')[1].split("</tr>")[0]
    theirs = html.split(f'data-testid="group-{other_id}"')[1].split("</tr>")[0]
    assert "Test Kitchen" in ours and "(1/" in ours
    assert "Riverside" in theirs and "(0/0)" in theirs
    # Each row opens that site's report, over the same range.
    opened = owner_client.post(f"/sites/{other_id}/switch", data={
        "next": f"/reports?range=custom&first={run_day}&last={run_day}"})
    assert opened.headers["Location"].startswith("/reports?range=custom")
    assert "Riverside" in owner_client.get(opened.headers["Location"]).get_data(as_text=True)
    # Never off to another host.
    away = owner_client.post(f"/sites/{other_id}/switch", data={"next": "//evil.example/x"})
    assert away.headers["Location"] == "/"
    chef = app.test_client()
    login_password(chef, *CHEF)
    assert chef.get("/reports/group").status_code == 403
