"""The pages through the Flask test client: login, roles, CSRF, the tablet flow."""
import datetime as dt
import io
import re
import time

import pytest
from sqlalchemy import func, select

from app.models import Answer, Photo, Run, SignInGuard, Site, Staff, db
from tests.factories import Kitchen, at_local, login_pin, make_app

DAY = dt.date(2026, 11, 27)
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
       b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
       b"\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def cook(client, kitchen):
    assert login_pin(client, kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    return client


def _open_before_lunch(client, app, freeze):
    freeze(at_local(DAY, "11:10"))
    page = client.get("/").get_data(as_text=True)
    slot = re.search(r'name="slot" value="([^"]+)"', page).group(1)
    response = client.post("/runs/open", data={"checklist": "serving_hygiene",
                                                "schedule": "before_lunch", "slot": slot})
    assert response.status_code == 302
    with app.app_context():
        return db.session.execute(select(Run)).scalar_one().id


def _items(app, run_id):
    with app.app_context():
        run = db.session.get(Run, run_id)
        return {i.key: i.id for i in run.definition.items}


def test_every_page_needs_a_login_except_the_login_pages(app, client, kitchen):
    public = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or "<" in rule.rule and "int:" not in rule.rule:
            continue
        url = re.sub(r"<int:\w+>", "1", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            response = client.open(url, method=method)
            if response.status_code in (200, 401) and method == "GET" and \
                    "/pin" in url or url in ("/login", "/healthz", "/favicon.ico"):
                public.add(url)
                continue
            assert response.status_code in (302, 401), (method, url, response.status_code)
            if response.status_code == 302:
                assert response.headers["Location"].endswith("/pin")
    assert public <= {"/pin", "/pin/1", "/login", "/healthz", "/favicon.ico"}


def test_cooks_cannot_reach_the_head_chefs_pages(app, cook, kitchen, freeze):
    run_id = _open_before_lunch(cook, app, freeze)
    assert cook.get("/records").status_code == 403
    assert cook.get(f"/records/runs/{run_id}").status_code == 403
    assert cook.post(f"/records/runs/{run_id}/verify").status_code == 403
    assert cook.post(f"/records/runs/{run_id}/items/1/correct", data={"value": "fail"}).status_code == 403


def test_wrong_pins_lock_the_person_for_a_minute(app, client, kitchen, freeze):
    now = freeze(dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc))
    for _ in range(4):
        response = login_pin(client, kitchen["cook"], "0000")
        assert response.status_code == 401 and "Wrong PIN" in response.get_data(as_text=True)
    response = login_pin(client, kitchen["cook"], "0000")
    assert "Too many wrong PINs" in response.get_data(as_text=True)
    response = login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    assert response.status_code == 401, "the right PIN is refused while locked"
    # Another person on the same tablet is not locked out.
    assert login_pin(client, kitchen["cook2"], Kitchen.PINS["cook2"]).status_code == 302
    freeze(now + dt.timedelta(seconds=61))
    assert login_pin(client, kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    with app.app_context():
        guard = db.session.get(SignInGuard, (kitchen["cook"], "pin", ""))
        assert (guard.failed, guard.locked_until) == (0, None)


def test_pins_and_passwords_are_stored_hashed(app, kitchen):
    with app.app_context():
        for person in db.session.execute(select(Staff)).scalars():
            assert person.pin_hash and person.pin_hash not in Kitchen.PINS.values()
            assert person.pin_hash.startswith(("scrypt:", "pbkdf2:"))


def test_password_login_is_for_head_chef_and_admin(client, kitchen):
    response = client.post("/login", data={"email": "chef@test.kitchen", "password": "chef-password"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/records")
    client.post("/logout")
    assert client.post("/login", data={"email": "chef@test.kitchen",
                                       "password": "nope"}).status_code == 401


def test_the_password_form_does_not_tell_who_has_an_account(app, client, kitchen, monkeypatch):
    """An unknown email answered in 3 ms and a real one in 90 ms, and only real accounts got the
    lock message: now each failure costs one password hash and gets the same words."""
    import hashlib
    hashed = []
    real_scrypt = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: hashed.append(1) or real_scrypt(*a, **k))

    def attempt(email, password="nope"):
        hashed.clear()
        response = client.post("/login", data={"email": email, "password": password})
        return response.status_code, len(hashed), response.get_data(as_text=True)

    answers = [attempt("nobody@test.kitchen"), attempt("chef@test.kitchen"),
               attempt("Cook Sam")]  # a cook has no password login
    for _ in range(app.config["BRIGADE_PIN_MAX_TRIES"]):
        attempt("chef@test.kitchen")
    answers.append(attempt("chef@test.kitchen"))  # locked now
    for status, hashes, page in answers:
        assert (status, hashes) == (401, 1)
        assert "Wrong email or password." in page and "Too many" not in page
    # The stand-in hash costs what a real one does (the same method and work factors).
    from werkzeug.security import generate_password_hash

    from app.auth.operations import _STAND_IN_HASH
    assert _STAND_IN_HASH.split("$")[0] == generate_password_hash("x").split("$")[0]


def _session_cookie(client):
    return client.get_cookie("session").value


def _with_cookie(app, value):
    thief = app.test_client()
    thief.set_cookie("session", value)
    return thief


def test_logout_ends_the_session_on_the_server_copied_cookies_included(app, client, kitchen):
    """A cookie copied before logout still worked for 31 days."""
    assert client.post("/login", data={"email": "chef@test.kitchen",
                                       "password": "chef-password"}).status_code == 302
    copied = _session_cookie(client)
    assert _with_cookie(app, copied).get("/records").status_code == 200
    client.post("/logout")
    assert _with_cookie(app, copied).get("/records").status_code == 302  # to the login
    # Logging in again works, with a new session.
    assert client.post("/login", data={"email": "chef@test.kitchen",
                                       "password": "chef-password"}).status_code == 302
    assert client.get("/records").status_code == 200


def test_leaving_the_tablet_does_not_end_the_chefs_laptop_session(app, kitchen):
    laptop, tablet = app.test_client(), app.test_client()
    assert laptop.post("/login", data={"email": "chef@test.kitchen",
                                       "password": "chef-password"}).status_code == 302
    assert login_pin(tablet, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    copied_tablet = _session_cookie(tablet)
    tablet.post("/logout")
    assert _with_cookie(app, copied_tablet).get("/").status_code == 302
    assert laptop.get("/records").status_code == 200


def test_a_new_pin_or_password_ends_the_persons_sessions(app, kitchen):
    laptop, tablet = app.test_client(), app.test_client()
    assert laptop.post("/login", data={"email": "chef@test.kitchen",
                                       "password": "chef-password"}).status_code == 302
    assert login_pin(tablet, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    with app.app_context():
        chef = db.session.get(Staff, kitchen["chef"])
        chef.set_pin("8642")
        db.session.commit()
    assert laptop.get("/records").status_code == 302
    assert tablet.get("/").status_code == 302


def test_a_password_session_ends_after_its_hours_however_busy(app, client, kitchen):
    assert client.post("/login", data={"email": "chef@test.kitchen",
                                       "password": "chef-password"}).status_code == 302
    with client.session_transaction() as session:
        session["started"] = time.time() - app.config["BRIGADE_SESSION_HOURS"] * 3600 + 60
    assert client.get("/records").status_code == 200
    with client.session_transaction() as session:
        session["started"] = time.time() - app.config["BRIGADE_SESSION_HOURS"] * 3600 - 1
    assert client.get("/records").status_code == 302


def test_idle_tablet_falls_back_to_the_pin_pad(app, cook):
    assert cook.get("/").status_code == 200
    with cook.session_transaction() as session:
        session["last_seen"] = time.time() - app.config["BRIGADE_TABLET_IDLE_SECONDS"] - 1
    response = cook.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/pin")
    assert cook.get("/").status_code == 302  # logged out, not just redirected once


def test_forms_need_a_csrf_token(database_url, tmp_path, kitchen):
    app = make_app(database_url, tmp_path / "csrf", WTF_CSRF_ENABLED=True)
    client = app.test_client()
    assert client.post(f"/pin/{kitchen['cook']}", data={"pin": Kitchen.PINS["cook"]}).status_code == 400
    page = client.get(f"/pin/{kitchen['cook']}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(f"/pin/{kitchen['cook']}", data={"pin": Kitchen.PINS["cook"],
                                                        "csrf_token": token}).status_code == 302
    # HTMX sends the token as a header.
    assert client.post("/timers", data={"kind": "plated", "dish": "Soup"}).status_code == 400
    assert client.post("/timers", data={"kind": "plated", "dish": "Soup"},
                       headers={"X-CSRFToken": token}).status_code == 302
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_tablet_flow_with_a_fail_and_a_sign_off(app, client, cook, kitchen, freeze):
    home = cook.get("/").get_data(as_text=True)
    assert "Serving hygiene" in home
    run_id = _open_before_lunch(cook, app, freeze)
    items = _items(app, run_id)
    hx = {"HX-Request": "true"}
    for key, item_id in items.items():
        if key in ("cold_unit_temp", "first_plated_at"):
            continue
        response = cook.post(f"/runs/{run_id}/items/{item_id}", headers=hx,
                             data={"value": "fail" if key == "no_reuse" else "pass"})
        assert response.status_code == 200 and f'id="item-{item_id}"' in response.get_data(as_text=True)
    response = cook.post(f"/runs/{run_id}/items/{items['cold_unit_temp']}", headers=hx,
                         data={"value": "7.5"})
    assert 'data-outcome="fail"' in response.get_data(as_text=True)
    response = cook.post(f"/runs/{run_id}/items/{items['cold_unit_temp']}", headers=hx,
                         data={"value": "warm"})
    assert response.status_code == 422 and "is not a temperature" in response.get_data(as_text=True)

    refused = cook.post(f"/runs/{run_id}/submit")
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "No served food and no guest" in body and "needs a corrective action" in body
    assert "Temperature of the cold-dish refrigerator" in body

    for key in ("no_reuse", "cold_unit_temp"):
        cook.post(f"/runs/{run_id}/items/{items[key]}", headers=hx,
                  data={"corrective_action": "Discarded the returned food"})
    response = cook.post(f"/runs/{run_id}/items/{items['no_reuse']}", headers=hx,
                         data={"photo": (io.BytesIO(PNG), "evidence.png")},
                         content_type="multipart/form-data")
    assert "-thumb" in response.get_data(as_text=True)
    submitted = cook.post(f"/runs/{run_id}/submit")
    assert submitted.status_code == 302
    assert "Submitted" in cook.get("/").get_data(as_text=True)

    cook.post("/logout")
    assert login_pin(cook, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    index = cook.get("/records").get_data(as_text=True)
    assert f"/records/runs/{run_id}" in index
    assert cook.post(f"/records/runs/{run_id}/verify", data={"note": "ok"}).status_code == 302
    assert "Verified by Chef Mei" in cook.get(f"/records/runs/{run_id}").get_data(as_text=True)
    with app.app_context():
        run = db.session.get(Run, run_id)
        assert run.submission.submitted_by_id == kitchen["cook"]
        assert run.verification.verified_by_id == kitchen["chef"]
        assert all(a.device_id for a in run.answers), "every answer names its device"
        photo = db.session.execute(select(Photo)).scalar_one()
    assert cook.get(f"/photos/{photo.id}").data == PNG


def test_a_non_image_upload_is_refused_and_loses_nothing(app, cook, freeze):
    run_id = _open_before_lunch(cook, app, freeze)
    item = _items(app, run_id)["covered"]
    cook.post(f"/runs/{run_id}/items/{item}", data={"value": "pass"}, headers={"HX-Request": "1"})
    response = cook.post(f"/runs/{run_id}/items/{item}", headers={"HX-Request": "1"},
                         data={"photo": (io.BytesIO(b"MZ\x90\x00 not a photo"), "virus.exe")},
                         content_type="multipart/form-data")
    assert response.status_code == 422 and "not a photo" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Answer)) == 1
        assert db.session.scalar(select(func.count()).select_from(Photo)) == 0


def test_runs_of_another_site_are_invisible(app, cook, freeze, kitchen):
    run_id = _open_before_lunch(cook, app, freeze)
    with app.app_context():
        other = Site(name="Other", timezone="Asia/Shanghai")
        person = Staff(site=other, name="Other cook", role=db.session.get(Staff, kitchen["cook"]).role)
        person.set_pin("4444")
        db.session.add_all([other, person])
        db.session.commit()
        other_id = person.id
    cook.post("/logout")
    login_pin(cook, other_id, "4444")
    assert cook.get(f"/runs/{run_id}").status_code == 404


def test_a_cook_can_switch_to_chinese(app, client, kitchen, freeze):
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    run_id = _open_before_lunch(client, app, freeze)
    client.post("/me/language", data={"language": "zh"})
    page = client.get(f"/runs/{run_id}").get_data(as_text=True)
    assert "供应前和供应过程中菜品均已遮盖" in page
    assert "提交" in page  # "Submit checklist" from the zh catalogue
    assert client.post("/me/language", data={"language": "fr"}).status_code == 400


def test_photos_of_another_site_are_not_served(app, cook, freeze, kitchen):
    run_id = _open_before_lunch(cook, app, freeze)
    item = _items(app, run_id)["covered"]
    cook.post(f"/runs/{run_id}/items/{item}", data={"value": "pass"}, headers={"HX-Request": "1"})
    cook.post(f"/runs/{run_id}/items/{item}", headers={"HX-Request": "1"},
              data={"photo": (io.BytesIO(PNG), "p.png")}, content_type="multipart/form-data")
    with app.app_context():
        photo_id = db.session.execute(select(Photo.id)).scalar_one()
        other = Site(name="Other", timezone="UTC")
        person = Staff(site=other, name="Other cook", role=db.session.get(Staff, kitchen["cook"]).role)
        person.set_pin("4444")
        db.session.add_all([other, person])
        db.session.commit()
        other_id = person.id
    assert cook.get(f"/photos/{photo_id}").status_code == 200
    cook.post("/logout")
    login_pin(cook, other_id, "4444")
    assert cook.get(f"/photos/{photo_id}").status_code == 404


def test_nobody_can_lock_the_head_chef_out_of_their_own_devices(app, kitchen):
    """Five wrong passwords from anywhere locked the head chef's password *and* PIN for 60 s,
    again and again, without logging in. Now the guesses lock strangers' browsers only: the
    chef's own laptop still signs in, and the PIN (a lock of its own) still works."""
    chef = {"email": "chef@test.kitchen", "password": "chef-password"}
    laptop, stranger, tablet = app.test_client(), app.test_client(), app.test_client()
    assert laptop.post("/login", data=chef).status_code == 302  # the chef's laptop, known now
    laptop.post("/logout")
    for _ in range(app.config["BRIGADE_PIN_MAX_TRIES"] + 3):
        assert stranger.post("/login", data={**chef, "password": "guess"}).status_code == 401
    assert stranger.post("/login", data=chef).status_code == 401  # locked for strangers
    assert laptop.post("/login", data=chef).status_code == 302  # not for the chef's laptop
    assert login_pin(tablet, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    # And wrong PINs do not lock the password.
    for _ in range(app.config["BRIGADE_PIN_MAX_TRIES"]):
        login_pin(app.test_client(), kitchen["chef"], "0000")
    assert login_pin(app.test_client(), kitchen["chef"], Kitchen.PINS["chef"]).status_code == 401
    assert login_pin(tablet, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    laptop.post("/logout")
    assert laptop.post("/login", data=chef).status_code == 302


def test_parallel_wrong_pins_still_lock_the_person(app, kitchen):
    import threading
    results = []

    def guess():
        client = app.test_client()
        results.append(login_pin(client, kitchen["cook"], "0000").status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [401] * 12
    with app.app_context():
        assert db.session.get(SignInGuard, (kitchen["cook"], "pin", "")).locked_until is not None
    assert login_pin(app.test_client(), kitchen["cook"], Kitchen.PINS["cook"]).status_code == 401


def test_forty_parallel_guesses_check_no_more_pins_than_one_lock_allows(app, kitchen, monkeypatch):
    """40 simultaneous guesses checked 15 wrong PINs (and could hit the right one) in one lock
    window: each attempt is now counted before its PIN is hashed, so at most MAX_TRIES are."""
    import hashlib
    import threading
    checked = []
    real_scrypt = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: checked.append(1) or real_scrypt(*a, **k))
    # All wrong: a right one that gets through resets the count, as it must (the person is in).
    guesses = [f"{n:04d}" for n in range(40) if f"{n:04d}" != Kitchen.PINS["cook"]][:40]
    results, start = [], threading.Barrier(40)

    def guess(pin):
        client = app.test_client()
        start.wait()
        results.append(login_pin(client, kitchen["cook"], pin).status_code)
    threads = [threading.Thread(target=guess, args=(pin,)) for pin in guesses]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tries = app.config["BRIGADE_PIN_MAX_TRIES"]
    assert results == [401] * 40 and len(checked) <= tries, len(checked)


def test_a_few_guesses_at_each_of_many_people_run_out_the_sites_budget(app, kitchen):
    """Five wrong PINs lock one person; but two at each of many people would never lock anyone.
    Strangers' browsers share the site's budget of wrong guesses, whoever they guess at."""
    app.config.update(BRIGADE_SITE_GUESSES=6, BRIGADE_DEVICE_GUESSES=100)
    # The chef's own tablet, used before: the budget never stands in their way.
    own = app.test_client()
    assert login_pin(own, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    people = ["cook", "cook2", "admin"]
    codes = [login_pin(app.test_client(), kitchen[who], "0000").status_code
             for who in people for _ in range(2)]
    assert codes == [401] * 6
    refused = login_pin(app.test_client(), kitchen["chef"], "0000")
    assert refused.status_code == 401 and "Try again in" in refused.get_data(as_text=True)
    # The right PIN from a stranger's browser is refused too, unchecked, until the window ends...
    assert login_pin(app.test_client(), kitchen["cook"], Kitchen.PINS["cook"]).status_code == 401
    # ...but not on the chef's own tablet.
    own.post("/logout")
    assert login_pin(own, kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    with app.app_context():
        from app.models import SignInBudget
        budget = db.session.get(SignInBudget, f"site:{kitchen['site']}:pin")
        assert budget.used == 6
        # A new window: the site's budget is whole again.
        budget.window_start -= dt.timedelta(seconds=app.config["BRIGADE_GUESS_WINDOW_SECONDS"])
        db.session.commit()
    assert login_pin(app.test_client(), kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302


def test_one_browser_guessing_at_everyone_runs_out_its_own_budget(app, kitchen):
    app.config.update(BRIGADE_SITE_GUESSES=100, BRIGADE_DEVICE_GUESSES=3)
    guesser = app.test_client()
    codes = [login_pin(guesser, kitchen[who], "0000").status_code
             for who in ("cook", "cook2", "admin")]
    assert codes == [401] * 3
    refused = login_pin(guesser, kitchen["chef"], Kitchen.PINS["chef"])
    assert refused.status_code == 401 and "Try again in" in refused.get_data(as_text=True)
    # Another browser is not held back by this one, and a right PIN gives its guess back.
    assert login_pin(app.test_client(), kitchen["chef"], Kitchen.PINS["chef"]).status_code == 302
    with app.app_context():
        from app.models import SignInBudget
        assert db.session.get(SignInBudget, f"site:{kitchen['site']}:pin").used == 3


def test_forty_parallel_guesses_at_four_people_hash_no_more_than_the_sites_budget(
        app, kitchen, monkeypatch):
    import hashlib
    import threading
    app.config.update(BRIGADE_SITE_GUESSES=8, BRIGADE_PIN_MAX_TRIES=100)
    checked = []
    real_scrypt = hashlib.scrypt
    monkeypatch.setattr(hashlib, "scrypt", lambda *a, **k: checked.append(1) or real_scrypt(*a, **k))
    people = ["chef", "cook", "cook2", "admin"]
    results, start = [], threading.Barrier(40)

    def guess(n):
        client = app.test_client()
        start.wait()
        results.append(login_pin(client, kitchen[people[n % 4]], f"9{n:03d}").status_code)
    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [401] * 40 and len(checked) <= 8, len(checked)


@pytest.mark.parametrize("url,status", [("/pin/99999999999999999999", 404),
                                        ("/records?day=9999-12-31", 400),
                                        ("/records?day=0001-01-01", 400),
                                        ("/runs/2147483648", 404)])
def test_out_of_range_input_is_a_clear_refusal(client, kitchen, url, status):
    login_pin(client, kitchen["chef"], Kitchen.PINS["chef"])
    assert client.get(url).status_code == status


def test_a_slot_due_after_midnight_stays_due_and_raises_overdue(app, client, kitchen, freeze, tmp_path):
    """A 23:30 closing check with a 60-minute window is still the tablet's business at 00:10."""
    import shutil
    from app.alerts.engine import sweep_checklists
    from app.checklists.definitions import DEFINITIONS_DIR, load_all
    from app.models import Alert
    folder = tmp_path / "defs"
    shutil.copytree(DEFINITIONS_DIR, folder)
    path = folder / "serving_hygiene.yaml"
    path.write_text(path.read_text().replace('at: "22:30"', 'at: "23:30"'))
    with app.app_context():
        load_all(db.session, folder)
        db.session.commit()
    freeze(at_local(DAY + dt.timedelta(days=1), "00:10"))
    login_pin(client, kitchen["cook"], Kitchen.PINS["cook"])
    home = client.get("/").get_data(as_text=True)
    assert 'data-testid="slot-closing-due"' in home
    freeze(at_local(DAY + dt.timedelta(days=1), "00:31"))
    assert 'data-testid="slot-closing-overdue"' in client.get("/").get_data(as_text=True)
    with app.app_context():
        sweep_checklists(db.session, at_local(DAY + dt.timedelta(days=1), "00:31"))
        db.session.commit()
        kinds = [(a.kind, a.detail["schedule"]) for a in db.session.execute(select(Alert)).scalars()]
    assert ("checklist_overdue", "closing") in kinds


def test_a_locked_tablet_still_shows_what_needs_attention(app, client, kitchen, freeze):
    from app.alerts.operations import raise_alert
    from app.timers.operations import start_timer
    t0 = freeze(dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc))
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        start_timer(db.session, site, db.session.get(Staff, kitchen["cook"]), None, "plated",
                    "Prawn salad", now=t0)
        db.session.commit()
    page = client.get("/pin").get_data(as_text=True)
    assert 'data-testid="locked-attention"' not in page and 'http-equiv="refresh"' in page
    freeze(t0 + dt.timedelta(minutes=16))
    with app.app_context():
        raise_alert(db.session, site_id=kitchen["site"], kind="offline", subject="unit:9:offline",
                    detail={"unit": "Prep fridge"})
        db.session.commit()
    page = client.get("/pin").get_data(as_text=True)
    box = page.split('data-testid="locked-attention"')[1].split("</div>")[0]
    assert "Prawn salad: served or discarded?" in box and "Prep fridge: no readings" in box
    # Once the sweep has raised the timer's alert, the timer is listed once, not twice.
    from app.alerts.engine import sweep_timers
    with app.app_context():
        assert sweep_timers(db.session, t0 + dt.timedelta(minutes=16))
        db.session.commit()
    page = client.get("/pin").get_data(as_text=True)
    box = page.split('data-testid="locked-attention"')[1].split("</div>")[0]
    assert box.count("Prawn salad") == 1 and box.count("<li>") == 2, box


def test_an_id_too_large_for_any_table_is_not_found(client, kitchen):
    """A 20-digit id names nothing: 404, not a database overflow (500)."""
    client.post("/login", data={"email": "chef@test.kitchen", "password": "chef-password"})
    for url in ("/alerts/99999999999999999999", "/records/99999999999999999999",
                "/calibration?sensor=99999999999999999999"):
        assert client.get(url).status_code == 404, url


def _waiting_runs(app, kitchen, n, first=0):
    """``n`` submitted runs, each with one failed answer, none signed off."""
    from app.models import ChecklistDefinition, Submission
    with app.app_context():
        definition = db.session.execute(select(ChecklistDefinition)).scalars().first()
        item = definition.items[0]
        start = dt.datetime(2026, 11, 1, 8, tzinfo=dt.timezone.utc)
        for i in range(first, first + n):
            slot = start + dt.timedelta(hours=i)
            run = Run(site_id=kitchen["site"], definition_id=definition.id,
                      checklist_key=definition.key, schedule_key="bench", slot_start=slot,
                      deadline=slot + dt.timedelta(hours=1), opened_by_id=kitchen["cook"])
            db.session.add(run)
            db.session.add(Answer(run=run, item_id=item.id, outcome="fail", value="no",
                                  recorded_by_id=kitchen["cook"], recorded_at=slot))
            db.session.add(Submission(run=run, submitted_by_id=kitchen["cook"],
                                      submitted_at=slot + dt.timedelta(minutes=30)))
        db.session.commit()


def test_the_sign_off_queue_is_paginated_and_costs_the_same_queries_at_any_length(app, client,
                                                                                  kitchen):
    from sqlalchemy import event
    login_pin(client, kitchen["chef"], Kitchen.PINS["chef"])
    client.get("/records")  # warm up: sessions, caches

    def queries(n_more, first):
        _waiting_runs(app, kitchen, n_more, first)
        statements = []

        def seen(*args):
            statements.append(args[2])
        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", seen)
        try:
            page = client.get("/records")
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert page.status_code == 200
        return len(statements), page.get_data(as_text=True)

    few, body = queries(3, 0)
    assert body.count('data-testid="review-') == 3 and "sign-off-pages" not in body
    many, body = queries(120, 3)
    assert many == few, "queries grow with the queue"
    assert body.count('data-testid="review-') == 50
    assert "123 runs waiting, page 1 of 3" in body
    assert re.findall(r"<td data-testid=\"fails-\d+\">(\d+)</td>", body) == ["1"] * 50
    last = client.get("/records?page=3").get_data(as_text=True)
    assert last.count('data-testid="review-') == 23 and "page 3 of 3" in last
    assert client.get("/records?page=0").status_code == 400
    assert client.get("/records?page=x").status_code == 400
    assert client.get("/records?page=99").status_code == 200  # past the end: the last page


def test_every_response_carries_the_security_headers(app, client):
    """A CSP without inline or evaluated script, no framing, no sniffing, no full referrer;
    HSTS only when the cookies are secure (served over HTTPS)."""
    for path in ("/pin", "/healthz", "/login", "/static/brigade.js", "/no-such-page"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "'unsafe-inline'" not in policy
        assert "'unsafe-eval'" not in policy and "frame-ancestors 'none'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in headers
    app.config["SESSION_COOKIE_SECURE"] = True
    assert client.get("/pin").headers["Strict-Transport-Security"] == "max-age=31536000"


def test_a_photo_over_the_limit_is_refused_on_the_item_in_the_cooks_language(app, cook, freeze):
    """It got Werkzeug's bare 413 and the tablet showed nothing."""
    app.config.update(MAX_CONTENT_LENGTH=100_000, BRIGADE_PHOTO_MAX_BYTES=100_000)
    run_id = _open_before_lunch(cook, app, freeze)
    item = _items(app, run_id)["covered"]
    cook.post(f"/runs/{run_id}/items/{item}", data={"value": "pass"}, headers={"HX-Request": "1"})
    big = {"photo": (io.BytesIO(b"\x89PNG" + b"0" * 300_000), "big.png")}
    response = cook.post(f"/runs/{run_id}/items/{item}", headers={"HX-Request": "1"}, data=big,
                         content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 422  # swapped into the item by the tablet, like any refusal
    assert "That photo is too large (the limit is 0.1 MB)" in page and f"item-{item}" in page
    cook.post("/me/language", data={"language": "zh"})
    big = {"photo": (io.BytesIO(b"\x89PNG" + b"0" * 300_000), "big.png")}
    page = cook.post(f"/runs/{run_id}/items/{item}", headers={"HX-Request": "1"}, data=big,
                     content_type="multipart/form-data").get_data(as_text=True)
    assert "照片太大" in page
    with app.app_context():
        assert db.session.scalar(select(func.count(Photo.id))) == 0
        answers = db.session.execute(select(Answer).where(Answer.item_id == item)).scalars().all()
        assert [a.value for a in answers] == ["pass"]  # the answer in force stays


@pytest.mark.parametrize("trusted", [0, 1])
def test_a_proxys_forwarded_headers_count_only_when_it_is_trusted(database_url, tmp_path, kitchen,
                                                                  trusted):
    """Behind a TLS-terminating proxy (BRIGADE_TRUSTED_PROXIES=1) a request it forwards as HTTPS
    is HTTPS (HSTS is sent); without that setting anyone could send X-Forwarded-Proto."""
    app = make_app(database_url, tmp_path / "proxy", BRIGADE_TRUSTED_PROXIES=trusted)
    headers = app.test_client().get("/pin", headers={"X-Forwarded-Proto": "https"}).headers
    assert ("Strict-Transport-Security" in headers) == bool(trusted)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_switching_language_on_a_refused_submit_returns_to_a_page_that_shows(app, cook, freeze):
    """A refused submit is shown at /runs/<id>/submit (a POST); switching to 中文 there sent the
    browser back to it with a GET: Method Not Allowed."""
    run_id = _open_before_lunch(cook, app, freeze)
    refused = cook.post(f"/runs/{run_id}/submit")
    assert refused.status_code in (200, 422) and f"/runs/{run_id}/submit" in refused.request.path
    back = cook.post("/me/language", data={"language": "zh"},
                     headers={"Referer": f"http://localhost/runs/{run_id}/submit"})
    assert back.status_code == 302 and back.headers["Location"] == f"/runs/{run_id}"
    page = cook.get(back.headers["Location"])
    assert page.status_code == 200 and "提交" in page.get_data(as_text=True)
    # A page that shows keeps its query; another site's address is never followed.
    back = cook.post("/me/language", data={"language": "en"},
                     headers={"Referer": "http://localhost/records?day=2026-11-27"})
    assert back.headers["Location"] == "/records?day=2026-11-27"
    back = cook.post("/me/language", data={"language": "en"},
                     headers={"Referer": "https://evil.example/phish"})
    assert back.headers["Location"] == "/"


def test_the_app_has_an_icon_and_favicon_ico_is_not_a_404(client, kitchen):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert b"<svg" in icon.data
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/pin").get_data(as_text=True)


def test_the_camera_button_shows_an_icon_the_app_serves_not_an_emoji(app, cook, freeze):
    """📷 rendered as an empty box where no emoji font is installed (Debian's tablets)."""
    run_id = _open_before_lunch(cook, app, freeze)
    item = _items(app, run_id)["covered"]
    part = cook.post(f"/runs/{run_id}/items/{item}", data={"value": "fail"},
                     headers={"HX-Request": "1"}).get_data(as_text=True)
    assert 'src="/static/camera.svg"' in part and "📷" not in part
    icon = cook.get("/static/camera.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"


def test_a_runs_history_says_what_each_record_changed(app, cook, kitchen, freeze):
    """One fail, its corrective action and its photo added later read 'Fail' three times."""
    run_id = _open_before_lunch(cook, app, freeze)
    item = _items(app, run_id)["covered"]
    url = f"/runs/{run_id}/items/{item}"
    cook.post(url, data={"value": "fail"}, headers={"HX-Request": "1"})
    cook.post(url, data={"corrective_action": "Covered the dishes"}, headers={"HX-Request": "1"})
    cook.post(url, headers={"HX-Request": "1"}, data={"photo": (io.BytesIO(PNG), "p.png")},
              content_type="multipart/form-data")
    chef = app.test_client()
    assert chef.post("/login", data={"email": "chef@test.kitchen",
                                     "password": "chef-password"}).status_code == 302
    page = chef.get(f"/records/runs/{run_id}").get_data(as_text=True)
    with app.app_context():
        ids = db.session.execute(select(Answer.id).where(Answer.item_id == item)
                                 .order_by(Answer.id)).scalars().all()
    lines = [re.sub(r"\s+", " ", page.split(f'data-testid="history-{i}">')[1].split("<")[0]).strip()
             for i in ids]
    assert len(lines) == 3
    assert lines[0].endswith("Cook Sam: Fail")
    assert lines[1].endswith("Cook Sam: corrective action: Covered the dishes")
    assert lines[2].endswith("Cook Sam: photo added")


@pytest.mark.parametrize("zone,locale,shown", [("Europe/London", "en", "27 Nov 2026 12:18"),
                                               ("America/New_York", "en", "Nov 27, 2026 07:18"),
                                               ("Europe/London", "zh", "2026年11月27日 12:18")])
def test_dates_read_in_the_order_of_the_sites_region(app, zone, locale, shown):
    from flask_babel import force_locale

    from app.formatting import local_time
    moment = dt.datetime(2026, 11, 27, 12, 18, tzinfo=dt.timezone.utc)
    with app.test_request_context(), force_locale(locale):
        assert local_time(moment, zone, "d MMM y HH:mm").replace(" ", " ") == shown
