"""HTTP ingest with an Idempotency-Key: a retried request is answered again, never stored twice."""
import datetime as dt
import itertools
import json
import threading

import pytest
from sqlalchemy import func, select

import app.units.device_api as routes
from app.models import Site, db, set_clock
from app.scheduler import _jobs, run_job
from app.units.tokens import create_token
from app.models.ingest import IdempotencyKey
from sensors.models import DeadLetter, Reading

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
#: No device time: stored at the receive time, so without a key a retry stores it again.
BODY = {"sensor": "cellar1", "t": 3.9}


@pytest.fixture
def token(app, kitchen):
    with app.app_context():
        _token, plain = create_token(db.session, db.session.get(Site, kitchen["site"]),
                                     "Cellar probe")
        db.session.commit()
    return plain


def _post(client, body, token, key=None):
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post("/api/readings", data=data, headers=headers,
                       content_type="application/json")


def _count(app, model):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_a_retry_with_the_same_key_gets_the_same_response_and_stores_nothing(app, client, token,
                                                                             freeze):
    freeze(T0)
    body = [BODY, {"sensor": "cellar1", "t": -300}]
    first = _post(client, body, token, key="reading-0001")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    assert first.get_json()["stored"] == 1 and first.get_json()["rejected"] == 1
    freeze(T0 + dt.timedelta(seconds=30))  # the device timed out and sent it again
    again = _post(client, body, token, key="reading-0001")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert _count(app, Reading) == 1 and _count(app, DeadLetter) == 1
    # Without a key the same retry is a new reading, as before.
    assert _post(client, body, token).get_json()["stored"] == 1
    assert _count(app, Reading) == 2


def test_a_refused_body_is_replayed_too_and_dead_lettered_once(app, client, token):
    first = _post(client, b"this is not json", token, key="k1")
    again = _post(client, b"this is not json", token, key="k1")
    assert first.status_code == again.status_code == 400
    assert again.get_json() == first.get_json() and "not JSON" in again.get_json()["error"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _count(app, DeadLetter) == 1


def test_the_same_key_with_another_body_is_refused_and_not_stored(app, client, token, freeze):
    freeze(T0)
    assert _post(client, BODY, token, key="k1").status_code == 200
    freeze(T0 + dt.timedelta(seconds=5))
    other = _post(client, {"sensor": "cellar1", "t": 4.4}, token, key="k1")
    assert other.status_code == 422
    assert "different body" in other.get_json()["error"]
    assert "Idempotent-Replayed" not in other.headers
    assert _count(app, Reading) == 1 and _count(app, DeadLetter) == 0
    # The key still answers its own body.
    assert _post(client, BODY, token, key="k1").headers["Idempotent-Replayed"] == "true"


def test_a_key_belongs_to_its_token(app, client, kitchen, token, freeze):
    with app.app_context():
        _other, other_token = create_token(db.session, db.session.get(Site, kitchen["site"]),
                                           "Second probe")
        db.session.commit()
    freeze(T0)
    assert _post(client, BODY, token, key="k1").get_json()["stored"] == 1
    freeze(T0 + dt.timedelta(seconds=5))
    theirs = _post(client, BODY, other_token, key="k1")
    assert theirs.status_code == 200 and "Idempotent-Replayed" not in theirs.headers
    assert theirs.get_json()["stored"] == 1
    assert _count(app, Reading) == 2 and _count(app, IdempotencyKey) == 2


@pytest.mark.parametrize("key", ["", "x" * 201, "caf\u00e9", "tab\there", "del\x7f"])
def test_a_malformed_key_is_refused_before_anything_is_stored(app, client, token, key):
    response = _post(client, BODY, token, key=key)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "Idempotency-Key must be 1 to 200 printable ASCII characters"}
    assert _count(app, Reading) == 0 and _count(app, DeadLetter) == 0
    assert _count(app, IdempotencyKey) == 0


@pytest.mark.parametrize("key", ["x" * 200, "a", "9f1c ~!{}"])
def test_any_printable_ascii_key_up_to_200_characters_is_taken(app, client, token, key):
    assert _post(client, BODY, token, key=key).status_code == 200
    assert _post(client, BODY, token, key=key).headers["Idempotent-Replayed"] == "true"
    assert _count(app, Reading) == 1


def test_the_token_is_checked_before_the_key(client):
    response = client.post("/api/readings", json=BODY, headers={"Idempotency-Key": ""})
    assert response.status_code == 401


def test_a_key_is_replayed_for_24_hours_then_is_new(app, client, token, freeze):
    freeze(T0)
    first = _post(client, BODY, token, key="k1")
    freeze(T0 + dt.timedelta(hours=23, minutes=59))
    assert _post(client, BODY, token, key="k1").headers["Idempotent-Replayed"] == "true"
    freeze(T0 + dt.timedelta(hours=24))
    later = _post(client, BODY, token, key="k1")
    assert later.status_code == 200 and "Idempotent-Replayed" not in later.headers
    assert later.get_json() == first.get_json()  # stored anew: {"stored": 1, ...}
    assert _count(app, Reading) == 2 and _count(app, IdempotencyKey) == 1
    freeze(T0 + dt.timedelta(hours=25))
    assert _post(client, BODY, token, key="k1").headers["Idempotent-Replayed"] == "true"
    assert _count(app, Reading) == 2


def test_the_retention_job_purges_keys_older_than_24_hours(app, client, token, freeze):
    freeze(T0)
    _post(client, BODY, token, key="old")
    freeze(T0 + dt.timedelta(hours=12))
    _post(client, BODY, token, key="recent")
    retention = next(job for job in _jobs() if job.id == "retention")
    outcome = run_job(app, retention, "test", T0 + dt.timedelta(hours=25))
    assert outcome.endswith("1 idempotency keys")
    with app.app_context():
        assert db.session.execute(select(IdempotencyKey.key)).scalars().all() == ["recent"]
    assert _count(app, Reading) == 2  # readings follow their own retention


def test_two_identical_requests_racing_store_once(app, token, monkeypatch):
    # Each request gets its own receive time, so without the key both readings would be kept.
    ticks = itertools.count()
    tick_lock = threading.Lock()

    def clock():
        with tick_lock:
            return T0 + dt.timedelta(seconds=next(ticks))
    set_clock(clock)
    # Hold both requests just after they found no remembered key, so both go on to store.
    both_checked = threading.Barrier(2, timeout=10)
    first_look = threading.local()
    real_remembered = routes.remembered
    looks = []

    def remembered(*args):
        found = real_remembered(*args)
        looks.append(found)
        if not getattr(first_look, "done", False):
            first_look.done = True
            both_checked.wait()
        return found
    monkeypatch.setattr(routes, "remembered", remembered)

    responses = [None, None]
    errors = []

    def send(i):
        try:
            responses[i] = _post(app.test_client(), BODY, token, key="race")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and all(r is not None for r in responses)
    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].get_json() == responses[1].get_json() == {
        "stored": 1, "duplicates": 0, "rejected": 0, "reasons": []}
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in responses) == ["", "true"]
    assert _count(app, Reading) == 1 and _count(app, IdempotencyKey) == 1
    # Both found no key; the loser looked again after its insert hit the winner's key.
    assert len(looks) == 3 and looks[:2] == [None, None] and looks[2] is not None


def test_a_winner_that_cannot_be_read_after_the_conflict_is_a_409():
    from app.units.ingest import replay
    reply = replay(None, "0" * 64)
    assert reply.status == 409 and "in progress" in reply.body["error"] and not reply.replayed


def test_a_token_is_found_by_its_hash_not_by_reading_every_live_token(app, kitchen):
    """The HTTP ingest looked at every live token on each request: with 200 tokens, one query
    that names the hash and fetches one row; a revoked or unknown token is refused."""
    from sqlalchemy import event

    from app.units.tokens import revoke_token, token_from_header
    with app.app_context():
        site = db.session.get(Site, kitchen["site"])
        plains = [create_token(db.session, site, f"probe {i}")[1] for i in range(200)]
        revoked, revoked_plain = create_token(db.session, site, "old probe")
        revoke_token(db.session, revoked, T0)
        db.session.commit()
        fetched = []

        def count_rows(conn, cursor, statement, parameters, context, executemany):
            if "ingest_tokens" in statement:
                fetched.append(statement)
        event.listen(db.engine, "after_cursor_execute", count_rows)
        try:
            found = token_from_header(db.session, f"Bearer {plains[150]}")
        finally:
            event.remove(db.engine, "after_cursor_execute", count_rows)
        assert found is not None and found.name == "probe 150"
        assert len(fetched) == 1 and "token_hash = " in fetched[0]
        assert token_from_header(db.session, f"Bearer {revoked_plain}") is None
        assert token_from_header(db.session, "Bearer nope") is None
        assert token_from_header(db.session, f"Basic {plains[0]}") is None
