"""Issue 10's records and alerts that read right: fail counts, slot names, late runs, limits."""
import re

import pytest

from app.models import Run, db
from tests.factories import Kitchen, login_password
from tests.test_pages import _items, _open_before_lunch

HX = {"HX-Request": "1"}


@pytest.fixture
def cook(client, kitchen):
    from tests.factories import login_pin
    assert login_pin(client, kitchen["cook"], Kitchen.PINS["cook"]).status_code == 302
    return client


def _all_pass(cook, run_id, items, skip=()):
    for key, item_id in items.items():
        if key in skip:
            continue
        value = {"cold_unit_temp": "3.5", "first_plated_at": "11:30"}.get(key, "pass")
        assert cook.post(f"/runs/{run_id}/items/{item_id}", data={"value": value},
                         headers=HX).status_code == 200


def test_the_sign_off_queue_counts_a_runs_current_fails_not_replaced_answers(app, cook, freeze):
    """One item failed, its corrective action and photo added, another failed then passed:
    five fail records in the chain, one fail in force."""
    run_id = _open_before_lunch(cook, app, freeze)
    items = _items(app, run_id)
    _all_pass(cook, run_id, items)
    covered, no_reuse = (f"/runs/{run_id}/items/{items[k]}" for k in ("covered", "no_reuse"))
    cook.post(covered, data={"value": "fail"}, headers=HX)
    cook.post(covered, data={"corrective_action": "Covered the dishes"}, headers=HX)
    cook.post(covered, data={"note": "Lids were in the wash"}, headers=HX)
    cook.post(no_reuse, data={"value": "fail"}, headers=HX)
    cook.post(no_reuse, data={"value": "pass"}, headers=HX)
    assert cook.post(f"/runs/{run_id}/submit").status_code == 302
    with app.app_context():
        fails = [a for a in db.session.get(Run, run_id).answers if a.outcome == "fail"]
        assert len(fails) == 4
    chef = app.test_client()
    assert login_password(chef, "chef@test.kitchen", "chef-password").status_code == 302
    page = chef.get("/records").get_data(as_text=True)
    assert re.search(rf'data-testid="fails-{run_id}">(\d+)<', page).group(1) == "1"
