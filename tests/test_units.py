"""Units, sensors, rejected messages and HTTP ingest, through the Flask test client."""
import datetime as dt
import hashlib
import json
import re

import pytest
from sqlalchemy import func, select

from app.models import Role, Site, Staff, db
from app.models.ingest import IngestToken
from app.models.units import Unit
from sensors.models import DeadLetter, Reading, Sensor
from sensors.store import Message, store_batch
from tests.factories import Kitchen, login_password, login_pin, make_app

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GOOD = {"name": "Pass fridge", "kind": "fridge", "target_max_c": "5", "critical_max_c": "8",
        "min_c": "", "alert_delay_s": "1800", "hysteresis_c": "0.5", "expected_interval_s": "60"}


def _client(app, kitchen, who):
    client = app.test_client()
    assert login_pin(client, kitchen[who], Kitchen.PINS[who]).status_code == 302
    return client


@pytest.fixture
def admin(app, kitchen):
    """The admin signed in with a password: settings are refused to a PIN session."""
    client = app.test_client()
    assert login_password(client, "admin@test.kitchen", "admin-password").status_code == 302
    return client


@pytest.fixture
def chef(app, kitchen):
    return _client(app, kitchen, "chef")


@pytest.fixture
def cook(app, kitchen):
    return _client(app, kitchen, "cook")


def _unit(app, site_id, name="Pass fridge", **kw):
    with app.app_context():
        unit = Unit(site_id=site_id, name=name, kind=kw.pop("kind", "fridge"),
                    target_max_c=kw.pop("target_max_c", 5.0),
                    critical_max_c=kw.pop("critical_max_c", 8.0), min_c=None, **kw)
        db.session.add(unit)
        db.session.commit()
        return unit.id


def _store(app, *messages):
    with app.app_context():
        result = store_batch(db.session, list(messages))
        db.session.commit()
        return result


def _sensor(app, key):
    with app.app_context():
        return db.session.execute(select(Sensor).where(Sensor.key == key)).scalar_one()


def _count(app, model, *where):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _other_site(app):
    """A second site with its own admin and unit."""
    with app.app_context():
        site = Site(name="Other Kitchen", timezone="America/New_York", temp_unit="F")
        db.session.add(site)
        db.session.flush()
        other = Staff(site_id=site.id, name="Other Admin", role=Role.ADMIN,
                      email="other@test.kitchen")
        other.set_pin("4321")
        other.set_password("other-password")
        unit = Unit(site_id=site.id, name="Their fridge", kind="fridge", target_max_c=5.0,
                    critical_max_c=7.0)
        db.session.add_all([other, unit])
        db.session.commit()
        return {"site": site.id, "admin": other.id, "unit": unit.id}


# --- roles -------------------------------------------------------------------------------------

ADMIN_PAGES = [("GET", "/units/new"), ("POST", "/units/new"), ("GET", "/units/1/edit"),
               ("POST", "/units/1/edit"), ("GET", "/units/sensors"),
               ("POST", "/units/sensors/1/attach"), ("POST", "/units/sensors/1/detach"),
               ("GET", "/units/dead-letters"), ("GET", "/units/tokens"), ("POST", "/units/tokens"),
               ("POST", "/units/tokens/1/revoke")]


def test_cooks_are_refused_every_page(app, cook, kitchen):
    _unit(app, kitchen["site"])
    for method, url in [("GET", "/units")] + ADMIN_PAGES:
        assert cook.open(url, method=method, data=GOOD).status_code == 403, (method, url)
    page = cook.get("/").get_data(as_text=True)
    assert "/units" not in page  # no nav link either


def test_an_admin_on_the_tablet_with_a_pin_gets_no_settings(app, kitchen):
    """A PIN typed on the shared tablet reached /units/tokens with full admin rights: settings,
    tokens and units now need a session begun with the password."""
    unit_id = _unit(app, kitchen["site"])
    tablet = _client(app, kitchen, "admin")
    for method, url in ADMIN_PAGES:
        response = tablet.open(url, method=method, data=GOOD)
        assert response.status_code == 403, (method, url)
    assert "need your password" in tablet.get("/units/tokens").get_data(as_text=True)
    page = tablet.get("/units").get_data(as_text=True)  # reading the units is the tablet's work
    assert "Pass fridge" in page and f"/units/{unit_id}/edit" not in page
    laptop = app.test_client()
    assert login_password(laptop, "admin@test.kitchen", "admin-password").status_code == 302
    assert laptop.get("/units/tokens").status_code == 200
    assert f"/units/{unit_id}/edit" in laptop.get("/units").get_data(as_text=True)


def test_head_chef_reads_the_units_but_cannot_change_anything(app, chef, kitchen):
    unit_id = _unit(app, kitchen["site"], alert_delay_s=900)
    page = chef.get("/units")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Pass fridge" in text and "5.0 °C" in text and "8.0 °C" in text and "900 s" in text
    assert f"/units/{unit_id}/edit" not in text and "/units/new" not in text
    assert 'href="/units"' in text and "/units/sensors" not in text  # nav: units, not sensors
    for method, url in ADMIN_PAGES:
        assert chef.open(url, method=method, data=GOOD).status_code == 403, (method, url)
    with app.app_context():
        assert db.session.get(Unit, unit_id).alert_delay_s == 900


def test_admin_adds_and_edits_a_unit(app, admin, kitchen):
    assert admin.get("/units/new").status_code == 200
    response = admin.post("/units/new", data=GOOD)
    assert response.status_code == 302 and response.headers["Location"].endswith("/units")
    with app.app_context():
        unit = db.session.execute(select(Unit)).scalar_one()
        assert (unit.site_id, unit.name, unit.kind, unit.target_max_c, unit.critical_max_c,
                unit.min_c, unit.alert_delay_s, unit.hysteresis_c, unit.expected_interval_s) == \
            (kitchen["site"], "Pass fridge", "fridge", 5.0, 8.0, None, 1800, 0.5, 60)
        unit_id = unit.id
    form = admin.get(f"/units/{unit_id}/edit").get_data(as_text=True)
    assert 'value="Pass fridge"' in form and 'value="8"' in form
    changed = dict(GOOD, name="Pass fridge 1", kind="display_case", min_c="−1", critical_max_c="7.5",
                   expected_interval_s="30")
    assert admin.post(f"/units/{unit_id}/edit", data=changed).status_code == 302
    with app.app_context():
        unit = db.session.get(Unit, unit_id)
        assert (unit.name, unit.kind, unit.min_c, unit.critical_max_c, unit.expected_interval_s) == \
            ("Pass fridge 1", "display_case", -1.0, 7.5, 30)
    listing = admin.get("/units").get_data(as_text=True)
    assert "Pass fridge 1" in listing and "Display case" in listing and "−1" not in listing


@pytest.mark.parametrize("changes,field,message", [
    ({"critical_max_c": "5"}, "critical_max_c", "above the target"),
    ({"critical_max_c": "4"}, "critical_max_c", "above the target"),
    ({"target_max_c": "nan"}, "target_max_c", "Enter a number"),
    ({"target_max_c": "inf"}, "target_max_c", "Enter a number"),
    ({"target_max_c": "1e1"}, "target_max_c", "Enter a number"),
    ({"target_max_c": "41"}, "target_max_c", "between"),        # °F typed into a °C site
    ({"critical_max_c": "-300"}, "critical_max_c", "between"),
    ({"kind": "freezer"}, "target_max_c", "between"),          # 5 °C is no freezer
    ({"min_c": "6"}, "min_c", "below the target"),
    ({"expected_interval_s": "4"}, "expected_interval_s", "from 5 to"),
    ({"expected_interval_s": "60.5"}, "expected_interval_s", "Whole seconds"),
    ({"alert_delay_s": "-1"}, "alert_delay_s", "Whole seconds"),
    ({"hysteresis_c": "20"}, "hysteresis_c", "A difference"),
    ({"name": "  "}, "name", "Give the unit a name"),
    ({"name": "x" * 121}, "name", "at most 120"),
    ({"kind": "oven"}, "kind", "Choose what kind"),
    ({"target_max_c": ""}, "target_max_c", "Required"),
])
def test_a_unit_form_with_a_mistake_is_refused_with_a_reason(app, admin, changes, field, message):
    response = admin.post("/units/new", data=dict(GOOD, **changes))
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = re.search(rf'data-testid="error-{field}">([^<]*)<', page)
    assert error and message in error.group(1), page
    assert _count(app, Unit) == 0


def test_two_units_of_a_site_cannot_share_a_name(app, admin, kitchen):
    _unit(app, kitchen["site"])
    response = admin.post("/units/new", data=dict(GOOD, name="pass FRIDGE"))
    assert response.status_code == 422 and "already called" in response.get_data(as_text=True)
    other = _other_site(app)
    _unit(app, other["site"], name="Walk-in")
    assert admin.post("/units/new", data=dict(GOOD, name="Walk-in", kind="walk_in")).status_code == 302


def test_a_preset_fills_the_limits_of_a_new_unit(app, admin):
    page = admin.get("/units/new?preset=uk_freezer").get_data(as_text=True)
    assert 'data-testid="field-target_max_c"' in page and 'value="-18"' in page and 'value="-15"' in page
    assert '<option value="freezer" selected>' in page
    blank = dict(GOOD, name="Freezer", kind="", target_max_c="", critical_max_c="",
                 preset="us_fridge")
    assert admin.post("/units/new", data=blank).status_code == 302
    with app.app_context():
        unit = db.session.execute(select(Unit)).scalar_one()
        assert (unit.kind, unit.target_max_c, unit.critical_max_c) == ("fridge", 5.0, 7.0)
    assert admin.get("/units/new?preset=mars_fridge").status_code == 400


def test_a_fahrenheit_site_enters_and_sees_fahrenheit_and_stores_celsius(app, admin, kitchen):
    with app.app_context():
        db.session.get(Site, kitchen["site"]).temp_unit = "F"
        db.session.commit()
    page = admin.get("/units/new?preset=us_fridge").get_data(as_text=True)
    assert 'value="41"' in page and 'value="44.6"' in page and 'value="0.9"' in page
    form = dict(GOOD, target_max_c="41", critical_max_c="46.4", min_c="32", hysteresis_c="0.9")
    assert admin.post("/units/new", data=form).status_code == 302
    with app.app_context():
        unit = db.session.execute(select(Unit)).scalar_one()
        assert (unit.target_max_c, unit.critical_max_c, unit.min_c, unit.hysteresis_c) == \
            (5.0, 8.0, 0.0, 0.5)
    listing = admin.get("/units").get_data(as_text=True)
    assert "41.0 °F" in listing and "46.4 °F" in listing and "0.9 °F" in listing
    # 5 (°F) is a plausible °C, but not a °F fridge limit: refused, not stored as −15 °C.
    response = admin.post("/units/new", data=dict(GOOD, name="Other", target_max_c="5"))
    assert response.status_code == 422 and "between 23.0 °F and 68.0 °F" in response.get_data(as_text=True)


# --- sensors -----------------------------------------------------------------------------------

def test_a_new_sensor_appears_unassigned_and_is_attached_and_detached(app, admin, kitchen, freeze):
    freeze(T0 + dt.timedelta(minutes=3))
    unit_id = _unit(app, kitchen["site"])
    _store(app, Message("brigade/fridge9/reading",
                        json.dumps({"t": 4.5, "ts": T0.isoformat(), "battery": 12}).encode(), T0),
           Message("brigade/fridge9/status", b"online", T0))
    page = admin.get("/units/sensors").get_data(as_text=True)
    unassigned = page.split('data-testid="unassigned"')[1].split("</table>")[0]
    assert "brigade/fridge9" in unassigned and "4.5 °C" in unassigned and "3 minutes ago" in unassigned
    assert "12 %" in unassigned and "online" in unassigned
    sensor_id = _sensor(app, "brigade/fridge9").id
    response = admin.post(f"/units/sensors/{sensor_id}/attach",
                          data={"unit_id": unit_id, "name": "Top shelf", "temp_unit": "C"})
    assert response.status_code == 302
    sensor = _sensor(app, "brigade/fridge9")
    assert (sensor.unit_id, sensor.name) == (unit_id, "Top shelf")
    page = admin.get("/units/sensors").get_data(as_text=True)
    assert "brigade/fridge9" not in page.split('data-testid="unassigned"')[1].split("</table>")[0]
    assert "Top shelf" in page.split('data-testid="assigned"')[1]
    listing = admin.get("/units").get_data(as_text=True)
    assert "Top shelf" in listing and "4.5 °C" in listing
    assert admin.post(f"/units/sensors/{sensor_id}/detach").status_code == 302
    assert _sensor(app, "brigade/fridge9").unit_id is None
    assert _count(app, Reading) == 1  # readings stay


def test_sensors_attach_only_to_units_of_the_admins_site(app, admin, kitchen):
    other = _other_site(app)
    mine = _unit(app, kitchen["site"])
    _store(app, Message("brigade/a/reading", b"4.0", T0), Message("brigade/b/reading", b"4.0", T0))
    a, b = _sensor(app, "brigade/a").id, _sensor(app, "brigade/b").id
    # Not onto another site's unit ...
    assert admin.post(f"/units/sensors/{a}/attach", data={"unit_id": other["unit"]}).status_code == 404
    assert _sensor(app, "brigade/a").unit_id is None
    # ... and another site's sensor is neither shown, moved nor detached.
    with app.app_context():
        db.session.get(Sensor, b).unit_id = other["unit"]
        db.session.commit()
    page = admin.get("/units/sensors").get_data(as_text=True)
    assert "brigade/a" in page and "brigade/b" not in page
    assert admin.post(f"/units/sensors/{b}/attach", data={"unit_id": mine}).status_code == 404
    assert admin.post(f"/units/sensors/{b}/detach").status_code == 404
    assert _sensor(app, "brigade/b").unit_id == other["unit"]
    assert admin.post("/units/sensors/999/attach", data={"unit_id": mine}).status_code == 404
    assert admin.get(f"/units/{other['unit']}/edit").status_code == 404


def test_a_sensor_set_to_fahrenheit_has_its_bare_numbers_read_as_fahrenheit(app, admin, kitchen):
    unit_id = _unit(app, kitchen["site"])
    _store(app, Message("shellies/ht-1/sensor/temperature", b"4.0", T0))
    sensor_id = _sensor(app, "shelly/ht-1").id
    assert admin.post(f"/units/sensors/{sensor_id}/attach",
                      data={"unit_id": unit_id, "temp_unit": "F"}).status_code == 302
    assert _sensor(app, "shelly/ht-1").temp_unit == "F"
    _store(app, Message("shellies/ht-1/sensor/temperature", b"41", T0 + dt.timedelta(minutes=1)))
    assert _sensor(app, "shelly/ht-1").last_temperature_c == pytest.approx(5.0)
    assert admin.post(f"/units/sensors/{sensor_id}/attach",
                      data={"unit_id": unit_id, "temp_unit": "K"}).status_code == 302
    assert _sensor(app, "shelly/ht-1").temp_unit == "F"


# --- rejected messages -------------------------------------------------------------------------

def test_rejected_messages_are_counted_and_shown_safely(app, admin, freeze):
    freeze(T0)
    _store(app,
           Message("brigade/x/reading", b'{"t": "<script>alert(1)</script>"}', T0),
           Message("brigade/x/reading", b"\xff\xfe<b>bold</b>", T0 - dt.timedelta(hours=30)),
           Message("no/such/<i>topic</i>", b"4.2", T0),
           Message("brigade/y/reading", b"not json at all", T0))
    response = admin.get("/units/dead-letters")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<script>alert" not in page and "<b>bold" not in page and "<i>topic" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the reason and the preview
    assert "\ufffd\ufffd&lt;b&gt;bold&lt;/b&gt;" in page     # bad UTF-8 replaced, then escaped
    assert "&lt;i&gt;topic&lt;/i&gt;" in page
    counts = page.split('data-testid="dead-letter-counts"')[1].split("</p>")[0]
    assert "3 in the last 24 hours" in counts and "4 in all" in counts
    reasons = page.split('data-testid="dead-letter-reasons"')[1].split("</table>")[0]
    assert "not JSON" in reasons and "not UTF-8" in reasons and "unknown topic" in reasons
    assert page.count("<tr>") >= 4 + 3


# --- HTTP ingest -------------------------------------------------------------------------------

def _token(admin, name="Cellar probe"):
    response = admin.post("/units/tokens", data={"name": name})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    return re.search(r"<code>(brg_[\w-]+)</code>", response.get_data(as_text=True)).group(1)


def _post(client, body, token, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post("/api/readings", data=data, headers=headers,
                       content_type="application/json", **kw)


def test_a_token_is_shown_once_and_stored_hashed(app, admin):
    token = _token(admin)
    with app.app_context():
        stored = db.session.execute(select(IngestToken)).scalar_one()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert stored.name == "Cellar probe" and stored.revoked_at is None
    listing = admin.get("/units/tokens").get_data(as_text=True)
    assert "Cellar probe" in listing and token not in listing
    assert admin.post("/units/tokens", data={"name": " "}).status_code == 302
    assert _count(app, IngestToken) == 1


def test_a_reading_posted_twice_is_stored_once(app, admin, client, freeze):
    freeze(T0)
    token = _token(admin)
    body = {"sensor": "cellar1", "t": 3.9, "ts": "2026-11-27T11:59:00Z", "unit": "C", "battery": 80}
    first = _post(client, body, token)
    assert first.status_code == 200
    assert first.get_json() == {"stored": 1, "duplicates": 0, "rejected": 0, "reasons": []}
    again = _post(client, [body], token)
    assert again.get_json() == {"stored": 0, "duplicates": 1, "rejected": 0, "reasons": []}
    assert _count(app, Reading) == 1
    sensor = _sensor(app, "brigade/cellar1")
    assert (sensor.unit_id, sensor.last_temperature_c, sensor.battery_pct) == (None, 3.9, 80)
    assert "brigade/cellar1" in admin.get("/units/sensors").get_data(as_text=True)
    assert "Set-Cookie" not in first.headers


def test_ingest_refuses_a_missing_wrong_or_revoked_token(app, admin, client):
    token = _token(admin)
    body = {"sensor": "cellar1", "t": 3.9}
    assert _post(client, body, None).status_code == 401
    assert _post(client, body, "brg_not-a-token").status_code == 401
    wrong = client.post("/api/readings", json=body, headers={"Authorization": f"Basic {token}"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert _post(client, body, token).status_code == 200
    with app.app_context():
        token_id = db.session.execute(select(IngestToken.id)).scalar_one()
    assert admin.post(f"/units/tokens/{token_id}/revoke").status_code == 302
    assert _post(client, body, token).status_code == 401
    assert "revoked" in admin.get("/units/tokens").get_data(as_text=True)
    assert _count(app, Reading) == 1 and _count(app, DeadLetter) == 0  # refused, not stored


@pytest.mark.parametrize("body,reason", [
    (b"this is not json", "not JSON"),
    (b'{"sensor": "x", "t": NaN}', "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"", "empty body"),
    (b"4.2", "expected a JSON object or a list"),
])
def test_a_body_that_is_not_json_is_refused_and_dead_lettered(app, admin, client, body, reason):
    token = _token(admin)
    response = _post(client, body, token)
    assert response.status_code == 400
    assert reason in response.get_json()["error"] and response.get_json()["rejected"] == 1
    with app.app_context():
        dead = db.session.execute(select(DeadLetter)).scalar_one()
        assert (dead.source, dead.payload, dead.payload_size) == ("http", body, len(body))
        assert reason in dead.reason


def test_a_list_of_good_and_bad_items_stores_the_good_and_keeps_the_bad(app, admin, client, freeze):
    freeze(T0)
    token = _token(admin)
    body = [
        {"sensor": "fridge1", "t": 4.1, "ts": "2026-11-27T11:58:00Z"},
        {"topic": "tele/kitchen1/SENSOR",
         "payload": {"DS18B20": {"Id": "00000328", "Temperature": 39.5}, "TempUnit": "F"}},
        {"topic": "brigade/fridge2/temperature", "payload": "3.5"},
        {"sensor": "fridge1", "t": -300},
        {"sensor": "fridge1", "t": 4.0, "batery": 50},
        {"topic": "nowhere/x", "payload": "1"},
        {"what": "is this"},
        42,
        {"sensor": "bad\u0000id", "t": 4},
    ]
    response = _post(client, body, token)
    assert response.status_code == 200
    result = response.get_json()
    assert (result["stored"], result["duplicates"], result["rejected"]) == (3, 0, 6)
    reasons = " | ".join(result["reasons"])
    for expected in ("implausible temperature", "unknown field(s): 'batery'", "unknown topic",
                     "item 6: expected", "item 7: expected an object, got number",
                     "item 8: topic has control characters"):
        assert expected in reasons
    with app.app_context():
        temps = dict(db.session.execute(select(Sensor.key, Sensor.last_temperature_c)).all())
        assert temps == {"brigade/fridge1": 4.1, "tasmota/kitchen1/DS18B20/00000328": 4.17,
                         "brigade/fridge2": 3.5}
        dead = db.session.execute(select(DeadLetter)).scalars().all()
        assert len(dead) == 6 and {d.source for d in dead} == {"http"}
        assert "nowhere/x" in {d.topic for d in dead}
    page = admin.get("/units/dead-letters").get_data(as_text=True)
    assert "implausible temperature" in page and "nowhere/x" in page


def test_a_body_too_large_is_refused(app, admin, client):
    token = _token(admin)
    huge = b'{"sensor": "x", "t": 4, "pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = _post(client, huge, token)
    assert response.status_code == 413 and "too large" in response.get_json()["error"]
    too_many = _post(client, [{"sensor": "x", "t": 4}] * 1001, token)
    assert too_many.status_code == 413 and "too many items" in too_many.get_json()["error"]
    with app.app_context():
        sizes = sorted(d.payload_size for d in db.session.execute(select(DeadLetter)).scalars())
        assert sizes[-1] == len(huge)
        assert all(len(d.payload) <= 4096 for d in db.session.execute(select(DeadLetter)).scalars())
    assert _count(app, Reading) == 0


def test_ingest_needs_no_csrf_token_but_the_token_pages_do(database_url, tmp_path, kitchen):
    app = make_app(database_url, tmp_path / "csrf", WTF_CSRF_ENABLED=True)
    client = app.test_client()
    token = "brg_test-token"
    with app.app_context():
        db.session.add(IngestToken(site_id=kitchen["site"], name="t",
                                   token_hash=hashlib.sha256(token.encode()).hexdigest()))
        db.session.commit()
    response = _post(client, {"sensor": "x", "t": 4.0}, token)
    assert response.status_code == 200 and response.get_json()["stored"] == 1
    page = client.get(f"/pin/{kitchen['admin']}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post(f"/pin/{kitchen['admin']}", data={"pin": Kitchen.PINS["admin"],
                                                         "csrf_token": csrf}).status_code == 302
    assert client.post("/units/tokens", data={"name": "no csrf"}).status_code == 400
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_breach_posted_over_http_raises_its_alert_at_once(app, admin, client, kitchen, freeze):
    from app.models import Alert
    from tests.factories import feed_salad, salad_fridge
    with app.app_context():
        salad_fridge(kitchen["site"], T0)
        last = feed_salad([4.0, 9.0, 9.0], T0 + dt.timedelta(minutes=1))  # critical above 8 °C
    now = freeze(last + dt.timedelta(minutes=1))
    token = _token(admin)
    response = _post(client, {"sensor": "salad", "t": 9.5, "ts": now.isoformat()}, token)
    assert response.get_json()["stored"] == 1
    with app.app_context():  # no sweep ran: the post itself evaluated the fridge
        [alert] = db.session.execute(select(Alert)).scalars().all()
        assert (alert.kind, alert.state.tier, alert.detail["peak_c"]) == ("temperature", "critical", 9.5)


# --- HTTP ingest across sites -----------------------------------------------------------------

def _other_admin(app, other):
    client = app.test_client()
    assert login_password(client, "other@test.kitchen", "other-password").status_code == 302
    return client


def test_a_token_belongs_to_the_site_of_the_admin_who_made_it(app, admin, kitchen):
    other = _other_site(app)
    theirs = _other_admin(app, other)
    _token(admin, "Cellar probe")
    _token(theirs, "Their walk-in probe")
    with app.app_context():
        sites = dict(db.session.execute(select(IngestToken.name, IngestToken.site_id)).all())
        assert sites == {"Cellar probe": kitchen["site"], "Their walk-in probe": other["site"]}
        their_id = db.session.execute(select(IngestToken.id).where(
            IngestToken.site_id == other["site"])).scalar_one()
    mine = admin.get("/units/tokens").get_data(as_text=True)
    assert "Cellar probe" in mine and "Their walk-in probe" not in mine
    assert "These tokens belong to Test Kitchen" in mine
    page = theirs.get("/units/tokens").get_data(as_text=True)
    assert "Their walk-in probe" in page and "Cellar probe" not in page
    # Another site's token is not there to revoke: 404, and it keeps working.
    assert admin.post(f"/units/tokens/{their_id}/revoke").status_code == 404
    with app.app_context():
        assert db.session.get(IngestToken, their_id).revoked_at is None
    assert theirs.post(f"/units/tokens/{their_id}/revoke").status_code == 302


def test_a_token_posts_only_for_its_sites_sensors_and_unassigned_ones(app, admin, client, kitchen,
                                                                      freeze):
    freeze(T0)
    other = _other_site(app)
    mine = _unit(app, kitchen["site"])
    _store(app, Message("brigade/ours/reading", b"4.0", T0 - dt.timedelta(minutes=5)),
           Message("brigade/theirs/reading", b"4.0", T0 - dt.timedelta(minutes=5)),
           Message("tele/their-tasmota/SENSOR",
                   b'{"DS18B20": {"Id": "0000AB", "Temperature": 3.0}, "TempUnit": "C"}',
                   T0 - dt.timedelta(minutes=5)))
    with app.app_context():
        for key, unit in [("brigade/ours", mine), ("brigade/theirs", other["unit"]),
                          ("tasmota/their-tasmota/DS18B20/0000AB", other["unit"])]:
            db.session.execute(select(Sensor).where(Sensor.key == key)).scalar_one().unit_id = unit
        db.session.commit()
    token = _token(admin)
    body = [
        {"sensor": "ours", "t": 4.4, "ts": "2026-11-27T11:59:00Z"},
        {"sensor": "theirs", "t": 9.9, "ts": "2026-11-27T11:59:00Z", "battery": 5},
        {"sensor": "new-probe", "t": 3.3, "ts": "2026-11-27T11:59:00Z"},
        {"topic": "brigade/theirs/status", "payload": "offline"},
        {"topic": "tele/their-tasmota/LWT", "payload": "Offline"},
        {"topic": "tele/their-tasmota/SENSOR",
         "payload": {"DS18B20": {"Id": "0000AB", "Temperature": 30.0}, "TempUnit": "C"}},
        {"sensor": "ours", "t": -300},
    ]
    response = _post(client, body, token)
    assert response.status_code == 200
    result = response.get_json()
    assert (result["stored"], result["duplicates"], result["rejected"]) == (2, 0, 5)
    reasons = " | ".join(result["reasons"])
    for expected in ("item 1: sensor brigade/theirs belongs to another site",
                     "item 3: sensor brigade/theirs belongs to another site",
                     "item 4: sensor tasmota/their-tasmota/DS18B20/0000AB belongs to another site",
                     "item 5: sensor tasmota/their-tasmota/DS18B20/0000AB belongs to another site",
                     "implausible temperature"):
        assert expected in reasons
    with app.app_context():
        state = {s.key: (s.unit_id, s.last_temperature_c, s.battery_pct, s.online)
                 for s in db.session.execute(select(Sensor)).scalars()}
        assert state == {
            "brigade/ours": (mine, 4.4, None, None),
            "brigade/new-probe": (None, 3.3, None, None),  # new sensors appear unassigned
            "brigade/theirs": (other["unit"], 4.0, None, None),  # untouched
            "tasmota/their-tasmota/DS18B20/0000AB": (other["unit"], 3.0, None, None)}
        dead = db.session.execute(select(DeadLetter)).scalars().all()
        assert len(dead) == 5
        assert {(d.source, d.site_id) for d in dead} == {("http", kitchen["site"])}
        assert "tele/their-tasmota/LWT" in {d.topic for d in dead}
    # Their own token may post for their sensors; an unassigned one is anyone's.
    theirs = _token(_other_admin(app, other), "Their probe")
    again = _post(client, [{"sensor": "theirs", "t": 4.1, "ts": "2026-11-27T11:59:30Z"},
                           {"sensor": "new-probe", "t": 3.4, "ts": "2026-11-27T11:59:30Z"}], theirs)
    assert again.get_json() == {"stored": 2, "duplicates": 0, "rejected": 0, "reasons": []}


def test_rejected_http_posts_are_shown_to_their_sites_admin_and_mqtt_ones_to_all(app, admin,
                                                                                 client, kitchen,
                                                                                 freeze):
    freeze(T0)
    other = _other_site(app)
    theirs = _other_admin(app, other)
    _store(app, Message("no/such/mqtt-topic", b"4.2", T0))
    _post(client, [{"sensor": "cellar1", "t": -300}, 42], _token(admin))  # store_batch's, ours
    _post(client, b"their broken body", _token(theirs, "Their probe"))
    with app.app_context():
        sites = sorted(db.session.execute(select(DeadLetter.topic, DeadLetter.site_id)).all())
        assert sites == [("/api/readings", other["site"]), ("/api/readings#1", kitchen["site"]),
                         ("brigade/cellar1/reading", kitchen["site"]), ("no/such/mqtt-topic", None)]
    page = admin.get("/units/dead-letters").get_data(as_text=True)
    assert "no/such/mqtt-topic" in page and "implausible temperature" in page
    assert "their broken body" not in page and "not JSON" not in page
    counts = page.split('data-testid="dead-letter-counts"')[1].split("</p>")[0]
    assert "3 in all" in counts
    page = theirs.get("/units/dead-letters").get_data(as_text=True)
    assert "no/such/mqtt-topic" in page and "their broken body" in page
    assert "implausible temperature" not in page and "cellar1" not in page


def test_a_tablet_page_open_for_hours_can_still_post(database_url, tmp_path, kitchen, monkeypatch):
    """HTMX keeps a tablet's page alive all day; its CSRF token expired after an hour."""
    import time

    import itsdangerous.timed
    app = make_app(database_url, tmp_path / "csrf-age", WTF_CSRF_ENABLED=True)
    client = app.test_client()
    page = client.get(f"/pin/{kitchen['cook']}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    later = time.time() + 9 * 3600  # a whole service later
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    response = client.post(f"/pin/{kitchen['cook']}", data={"pin": Kitchen.PINS["cook"],
                                                             "csrf_token": csrf})
    assert response.status_code == 302
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
