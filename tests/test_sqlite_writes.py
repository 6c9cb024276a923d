"""SQLite writers queue on one lock in the process, and always give it back."""
import threading
import time

import pytest
from sqlalchemy import create_engine, text

from app.sqlite_writes import serialise_writers


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    yield engine
    engine.dispose()


def test_only_sqlite_gets_a_lock():
    assert serialise_writers(create_engine("postgresql+psycopg://x@127.0.0.1/x")) is None


def test_the_lock_is_held_from_the_first_write_to_the_end_of_the_transaction(engine):
    lock = serialise_writers(engine)
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM t"))
        assert not lock.locked()  # reading does not queue
        conn.execute(text("INSERT INTO t VALUES (1)"))
        assert lock.locked()
        conn.execute(text("UPDATE t SET n = 2"))
        conn.commit()
        assert not lock.locked()
        conn.execute(text("  delete FROM t"))
        assert lock.locked()
        conn.rollback()
        assert not lock.locked()
        conn.execute(text("INSERT INTO t VALUES (3)"))
    assert not lock.locked()  # closed mid-transaction: rolled back, lock given back
    with pytest.raises(Exception):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (4)"))
            conn.execute(text("INSERT INTO nowhere VALUES (4)"))
    assert not lock.locked()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM t")).scalars().all() == [2]


def test_concurrent_writers_wait_their_turn_instead_of_failing(engine):
    lock = serialise_writers(engine)
    errors = []

    def write(n):
        try:
            for i in range(20):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n * 100 + i})
                    time.sleep(0.001)  # hold the write lock a moment, as a request does
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and not lock.locked()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 160
