"""One writer at a time on SQLite, queued inside the process instead of polling the file lock.

SQLite lets one connection write at a time. The others wait in its busy handler, which
sleeps and retries (1, 2, 5 … then 100 ms at a time), so under a burst of tablets a
waiter sleeps through the moments the lock is free and a few unlucky requests wait for
seconds: ``bench/tablet_tickoff.py`` measured a p95 of 2.2 s and a worst case of 8 s
for a tick-off at 30 tablets, with the server idle half the time. The web server's
threads therefore take a process-wide lock just before their first write and release
it when the transaction ends: they queue, and the next one is woken at once. Another
process writing the same file still meets SQLite's own lock, as before.
"""
from __future__ import annotations

import threading

from sqlalchemy import event

_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_HELD = "brigade_writer_lock"


def serialise_writers(engine, timeout: float = 30.0) -> threading.Lock | None:
    """Queue this engine's write transactions on one lock (SQLite only); returns the lock."""
    if engine.dialect.name != "sqlite":
        return None
    lock = threading.Lock()

    @event.listens_for(engine, "before_cursor_execute")
    def _before_first_write(conn, cursor, statement, parameters, context, executemany):
        if _HELD not in conn.info and statement.lstrip()[:7].upper().startswith(_WRITES):
            # Not got in time (say, a second connection in the same thread): go on, and
            # let SQLite's busy timeout decide, exactly as without this lock.
            conn.info[_HELD] = lock.acquire(timeout=timeout)

    def _release(record) -> None:
        if record is not None and record.info.pop(_HELD, False):
            lock.release()

    # Commit and rollback end a transaction (the events come just before SQLite's own
    # commit, which takes well under a millisecond in WAL mode); the pool's events catch
    # a connection given back, or dropped, without either.
    event.listen(engine, "commit", lambda conn: _release(conn))
    event.listen(engine, "rollback", lambda conn: _release(conn))
    event.listen(engine, "checkin", lambda dbapi_conn, record: _release(record))
    event.listen(engine, "close", lambda dbapi_conn, record: _release(record))
    event.listen(engine, "invalidate", lambda dbapi_conn, record, exc: _release(record))
    return lock
