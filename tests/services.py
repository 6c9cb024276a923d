"""Real services for the tests: a throwaway PostgreSQL and Mosquitto on free ports.

Each starts from the system's binaries into a temporary folder and is stopped at
the end of the session, so the tests never touch (or depend on) a server that a
previous session left running. When a binary is missing the caller skips — and
``.ci/run`` turns any skip of a required service into a failure.
"""
from __future__ import annotations

import glob
import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ServiceUnavailable(RuntimeError):
    """The service's binaries are not installed on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def wait_until(predicate, timeout: float = 20.0, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or \
        ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise ServiceUnavailable(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found[-1]


class Postgres:
    """A PostgreSQL cluster in ``workdir`` with trust auth on a free port."""

    def __init__(self):
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            # initdb refuses to run as root; use the postgres account the package creates.
            pwd.getpwnam("postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        # Its own folder (pytest's are private to root, which the postgres account cannot enter).
        self.workdir = Path(tempfile.mkdtemp(prefix="brigade-pg-"))
        self.datadir = self.workdir / "pgdata"

    def start(self) -> str:
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if self.as_user:
            shutil.chown(self.workdir, "postgres")
        subprocess.run(self.as_user + [initdb, "-D", str(self.datadir), "-U", "postgres",
                                       "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                       check=True, capture_output=True)
        self.resume()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def halt(self) -> None:
        """Stop the server as a crash would (its data stays; ``resume`` starts it again)."""
        subprocess.run(self.as_user + [_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m",
                                       "immediate", "stop"], capture_output=True, check=True)

    def resume(self) -> None:
        """Start the halted server again; returns once it accepts connections."""
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off " \
                  "-c max_connections=200"
        subprocess.run(self.as_user + [_pg_bin("pg_ctl"), "-D", str(self.datadir), "-o", options,
                                       "-w", "-l", str(self.workdir / "pg.log"), "start"],
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(self.as_user + [_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m",
                                       "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


class Mosquitto:
    """A Mosquitto broker on a free port, persistence off, generous queues."""

    def __init__(self, workdir: Path, extra_conf: str = "", persistent: bool = False):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        #: Lines for the listener (certfile, password_file …); replace allow_anonymous true.
        self.extra_conf = extra_conf
        #: Keep sessions and queued messages on disk across a restart (as deploy/ does).
        self.persistent = persistent

    def start(self) -> int:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(binary):
            raise ServiceUnavailable("mosquitto is not installed (apt-get install mosquitto)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        access = self.extra_conf or "allow_anonymous true\n"
        # As whoever runs the tests: started as root, Mosquitto would become the `mosquitto`
        # user, who cannot write to pytest's private temporary directory.
        persistence = (f"persistence true\npersistence_location {self.workdir}/\n"
                       f"user {getpass.getuser()}\n") if self.persistent else "persistence false\n"
        conf.write_text(f"listener {self.port} 127.0.0.1\n{access}{persistence}"
                        "max_queued_messages 100000\nmax_inflight_messages 0\n"
                        "set_tcp_nodelay true\n")
        self.process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                        stderr=open(self.workdir / "mosquitto.log", "wb"))
        wait_for_port(self.port)
        return self.port

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
