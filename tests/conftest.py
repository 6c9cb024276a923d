"""Fixtures: an app per test on SQLite and on a throwaway PostgreSQL, and kitchen data."""
from __future__ import annotations

import datetime as dt
import os

import pytest

from app.models import db, set_clock
from tests.factories import Kitchen, make_app, reset_schema, unavailable
from tests.services import Mosquitto, Postgres, ServiceUnavailable


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory):
    """A PostgreSQL server for the whole session (BRIGADE_TEST_POSTGRES_URL, or our own)."""
    if os.environ.get("BRIGADE_TEST_POSTGRES_URL"):
        yield os.environ["BRIGADE_TEST_POSTGRES_URL"]
        return
    server = Postgres()
    try:
        url = server.start()
    except (ServiceUnavailable, KeyError, OSError) as exc:
        unavailable(f"PostgreSQL: {exc}")
    yield url
    server.stop()


@pytest.fixture(scope="session")
def mosquitto_port(tmp_path_factory):
    """A Mosquitto broker for the whole session, on a free port."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        port = broker.start()
    except ServiceUnavailable as exc:
        unavailable(f"Mosquitto: {exc}")
    yield port
    broker.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'brigade.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path / "instance")
    reset_schema(app)
    yield app
    set_clock(None)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app):
    """An app context for tests that call operations directly."""
    with app.app_context():
        yield


@pytest.fixture
def kitchen(app):
    with app.app_context():
        k = Kitchen()
        ids = {"site": k.site.id, "chef": k.chef.id, "cook": k.cook.id, "cook2": k.cook2.id,
               "admin": k.admin.id}
    return ids


@pytest.fixture
def freeze(app):
    """freeze(datetime) pins Brigade's clock for this test."""
    def _freeze(moment: dt.datetime):
        set_clock(lambda: moment)
        return moment
    return _freeze
