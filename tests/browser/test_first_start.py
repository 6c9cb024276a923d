"""A real kitchen from nothing, in Chromium: `flask setup` on an empty database, then the admin
adds a head chef and two cooks in the app, each signs in, and one who leaves is shut out."""
from __future__ import annotations

import re
import threading

import pytest
from playwright.sync_api import expect

from app.models import db, set_clock
from tests.browser.conftest import CHROMIUM_ARGS, LAPTOP, TABLET, _stop  # noqa: F401
from tests.factories import make_app, reset_schema

pytestmark = pytest.mark.browser


@pytest.fixture
def empty_instance(tmp_path):
    """Brigade on an empty SQLite database (no demo, no people), served by waitress."""
    import waitress
    app = make_app(f"sqlite:///{tmp_path / 'brigade.db'}", tmp_path / "instance",
                   WTF_CSRF_ENABLED=True)
    reset_schema(app)
    set_clock(None)
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, name="brigade-waitress", daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.effective_port}"
    _stop(server, thread)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _context(browser, url, viewport):
    context = browser.new_context(viewport=viewport, locale="en-GB", base_url=url)
    context.set_default_timeout(10_000)
    return context


def _add(page, name: str, role: str, email: str | None = None) -> tuple[str, str | None]:
    """Add a person on the People page; returns the PIN (and password) shown once."""
    page.goto("/people")
    page.get_by_test_id("add-person").click()
    page.get_by_test_id("field-name").fill(name)
    page.get_by_test_id("field-role").select_option(role)
    if email:
        page.get_by_test_id("field-email").fill(email)
    page.get_by_test_id("save-person").click()
    expect(page.get_by_test_id("shown-once")).to_be_visible()
    pin = page.get_by_test_id("new-pin").inner_text()
    password = page.get_by_test_id("new-password").inner_text() if email else None
    return pin, password


def _pin_in(page, name: str, pin: str) -> None:
    page.goto("/pin")
    page.get_by_role("link", name=name).click()
    for digit in pin:
        page.locator(f'.keypad .key[data-key="{digit}"]').click()
    expect(page.get_by_test_id("pin-input")).to_have_value(pin)
    page.get_by_test_id("pin-ok").click()
    expect(page.get_by_test_id("who")).to_have_text(name)


def test_a_real_kitchen_is_set_up_staffed_and_someone_who_left_is_shut_out(
        browser, empty_instance, artifacts):
    app, url = empty_instance
    # 1. The documented first start: one command, no demo, nothing printed that grants access.
    result = app.test_cli_runner().invoke(args=[
        "setup", "--site-name", "Golden Wok", "--timezone", "Europe/London", "--language", "en",
        "--temp-unit", "C", "--admin-name", "Lin Admin", "--admin-email", "lin@goldenwok.example",
        "--admin-password", "correct horse 1"])
    assert result.exit_code == 0, result.output
    assert "correct horse 1" not in result.output

    laptop = _context(browser, url, LAPTOP)
    admin = laptop.new_page()
    admin.goto("/login")
    admin.fill('input[name="email"]', "lin@goldenwok.example")
    admin.fill('input[name="password"]', "correct horse 1")
    admin.get_by_role("button", name=re.compile("Log in", re.I)).click()
    expect(admin.get_by_test_id("who")).to_have_text("Lin Admin")

    # 2. The admin staffs the kitchen: a head chef and two cooks, each given a PIN once.
    chef_pin, chef_password = _add(admin, "Mei Chen", "head_chef", "mei@goldenwok.example")
    admin.screenshot(path=str(artifacts / "first-start-pin-shown-once.png"), full_page=True)
    sam_pin, _ = _add(admin, "Sam Cook", "cook")
    li_pin, _ = _add(admin, "Li Cook", "cook")
    assert all(re.fullmatch(r"\d{6}", pin) for pin in (chef_pin, sam_pin, li_pin))
    admin.goto("/people")
    expect(admin.get_by_test_id("people")).to_contain_text("Mei Chen")
    admin.screenshot(path=str(artifacts / "first-start-people.png"), full_page=True)

    # 3. Each signs in: the head chef on a laptop, everyone on the kitchen's tablet.
    chef_laptop = _context(browser, url, LAPTOP)
    chef = chef_laptop.new_page()
    chef.goto("/login")
    chef.fill('input[name="email"]', "mei@goldenwok.example")
    chef.fill('input[name="password"]', chef_password)
    chef.get_by_role("button", name=re.compile("Log in", re.I)).click()
    expect(chef.get_by_test_id("who")).to_have_text("Mei Chen")
    expect(chef.get_by_test_id("nav-settings")).to_be_visible()

    sams_tablet = _context(browser, url, TABLET)
    tablet = sams_tablet.new_page()
    for name, pin in (("Mei Chen", chef_pin), ("Li Cook", li_pin)):
        _pin_in(tablet, name, pin)
        tablet.get_by_test_id("switch-person").click()
    _pin_in(tablet, "Sam Cook", sam_pin)
    tablet.screenshot(path=str(artifacts / "first-start-cook-signed-in.png"), full_page=True)
    old_cookie = [c for c in sams_tablet.cookies() if c["name"] == "session"]
    assert old_cookie

    # 4. Sam leaves: the admin deactivates him; his session, his PIN and a copied cookie stop.
    admin.goto("/people")
    admin.get_by_role("link", name="Sam Cook").click()
    admin.get_by_test_id("deactivate").click()
    expect(admin.get_by_test_id("person-status")).to_have_text("deactivated")
    admin.screenshot(path=str(artifacts / "first-start-deactivated.png"), full_page=True)

    tablet.goto("/")
    expect(tablet).to_have_url(re.compile(r"/pin"))  # his open session ended at once
    expect(tablet.get_by_role("link", name="Sam Cook")).to_have_count(0)
    expect(tablet.get_by_role("link", name="Li Cook")).to_be_visible()
    tablet.screenshot(path=str(artifacts / "first-start-pin-pad-after.png"), full_page=True)
    copied = _context(browser, url, TABLET)
    copied.add_cookies(old_cookie)
    thief = copied.new_page()
    thief.goto("/")
    expect(thief).to_have_url(re.compile(r"/pin"))
    assert thief.goto(f"/pin/{_staff_id(app, 'Sam Cook')}").status == 404
    for context in (laptop, chef_laptop, sams_tablet, copied):
        context.close()


def _staff_id(app, name: str) -> int:
    from sqlalchemy import select

    from app.models import Staff
    with app.app_context():
        return db.session.execute(select(Staff.id).where(Staff.name == name)).scalar_one()
