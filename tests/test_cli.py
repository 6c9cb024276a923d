"""Commands: demo seeding, definition loading."""
import json
import shutil

from app.checklists.definitions import DEFINITIONS_DIR
from app.models import Role, Site, Staff, db
from app.models.units import Unit


def test_seed_demo_creates_the_kitchen_once(app, runner):
    assert runner.invoke(args=["checklists", "load"]).exit_code == 0
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0 and "demo kitchen created" in result.output
    with app.app_context():
        assert db.session.query(Site).count() == 1
        roles = sorted(s.role.value for s in db.session.query(Staff))
        assert roles == ["admin", "cook", "cook", "cook", "head_chef"]
        kinds = sorted(u.kind for u in db.session.query(Unit))
        assert kinds == ["cold_well", "freezer", "fridge", "fridge"]
        # Each unit has its simulated sensor attached, so the demo's fridges report at once.
        from sensors.models import Sensor
        attached = {s.unit_id for s in db.session.query(Sensor) if s.unit_id}
        assert attached == {u.id for u in db.session.query(Unit)}
        chef = db.session.query(Staff).filter_by(role=Role.HEAD_CHEF).one()
    creds = json.loads((app.instance_path and open(f"{app.instance_path}/demo-credentials.json").read()))
    chef_entry = next(c for c in creds if c["role"] == "head_chef")
    assert chef_entry["pin"] not in result.output  # `flask serve` prints them, once per start
    with app.app_context():
        assert db.session.get(Staff, chef.id).check_pin(chef_entry["pin"])
    again = runner.invoke(args=["seed-demo"])
    assert "already has a site" in again.output and chef_entry["pin"] not in again.output


def test_checklists_load_reports_a_bad_file_and_changes_nothing(app, runner, tmp_path):
    folder = tmp_path / "defs"
    shutil.copytree(DEFINITIONS_DIR, folder)
    (folder / "broken.yaml").write_text("key: broken\nitems: []\n")
    result = runner.invoke(args=["checklists", "load", "--dir", str(folder)])
    assert result.exit_code != 0 and "broken.yaml: needs a non-empty items list" in result.output
    with app.app_context():
        from app.models import ChecklistDefinition
        assert db.session.query(ChecklistDefinition).count() == 0


def test_setup_makes_a_real_kitchen_from_prompts_with_no_demo_and_no_secret_printed(app, runner):
    answers = "\n".join(["Golden Wok", "Asia/Shanghai", "zh", "C", "Lin Admin",
                         "Lin@GoldenWok.example", "correct horse 1", "correct horse 1"]) + "\n"
    result = runner.invoke(args=["setup"], input=answers)
    assert result.exit_code == 0, result.output
    assert "Golden Wok" in result.output and "lin@goldenwok.example" in result.output
    assert result.output.count("correct horse 1") == 0  # hidden as typed, never echoed
    with app.app_context():
        site = db.session.query(Site).one()
        assert (site.name, site.timezone, site.temp_unit) == ("Golden Wok", "Asia/Shanghai", "C")
        admin = db.session.query(Staff).one()
        assert (admin.role, admin.email, admin.locale) == (Role.ADMIN, "lin@goldenwok.example", "zh")
        assert admin.check_password("correct horse 1") and "correct" not in admin.password_hash
        assert db.session.query(Unit).count() == 0  # nothing of the demo
        from app.checklists.definitions import current_definitions
        assert current_definitions(db.session)  # the tablet's checklists are there
    import os
    assert not os.path.exists(f"{app.instance_path}/demo-credentials.json")
    client = app.test_client()
    assert client.post("/login", data={"email": "lin@goldenwok.example",
                                       "password": "correct horse 1"}).status_code == 302
    again = runner.invoke(args=["setup", "--site-name", "X", "--timezone", "UTC", "--language",
                                "en", "--temp-unit", "C", "--admin-name", "Y", "--admin-email",
                                "y@example.com", "--admin-password", "long enough pw"])
    assert again.exit_code == 1 and "already has a kitchen" in again.output


def test_setup_refuses_what_a_kitchen_cannot_work_with_and_writes_nothing(app, runner):
    base = {"--site-name": "Golden Wok", "--timezone": "Europe/London", "--language": "en",
            "--temp-unit": "C", "--admin-name": "Sam", "--admin-email": "sam@example.com",
            "--admin-password": "long enough pw"}
    for option, bad, said in [("--timezone", "Mars/Olympus", "Unknown time zone"),
                              ("--admin-email", "not-an-email", "not an email address"),
                              ("--admin-password", "short", "at least 10 characters"),
                              ("--site-name", "   ", "name is needed"),
                              ("--temp-unit", "K", "Invalid value")]:
        args = ["setup"] + [x for k, v in {**base, option: bad}.items() for x in (k, v)]
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and said in result.output, (option, result.output)
    with app.app_context():
        assert db.session.query(Site).count() == 0 and db.session.query(Staff).count() == 0
