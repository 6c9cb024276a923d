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
    assert chef_entry["pin"] in result.output
    with app.app_context():
        assert db.session.get(Staff, chef.id).check_pin(chef_entry["pin"])
    again = runner.invoke(args=["seed-demo"])
    assert "already has a site" in again.output and chef_entry["pin"] in again.output


def test_checklists_load_reports_a_bad_file_and_changes_nothing(app, runner, tmp_path):
    folder = tmp_path / "defs"
    shutil.copytree(DEFINITIONS_DIR, folder)
    (folder / "broken.yaml").write_text("key: broken\nitems: []\n")
    result = runner.invoke(args=["checklists", "load", "--dir", str(folder)])
    assert result.exit_code != 0 and "broken.yaml: needs a non-empty items list" in result.output
    with app.app_context():
        from app.models import ChecklistDefinition
        assert db.session.query(ChecklistDefinition).count() == 0
