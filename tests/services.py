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


class RenumberingProxy:
    """A TCP proxy in front of an MQTT broker that, like RabbitMQ's MQTT plugin or a NATS node
    after a restart, gives every QoS 1 PUBLISH it forwards to a client a packet id of its own
    (counting from 40,000 + 1,000 × the connection's number, so never the broker's nor one it
    gave before), and maps the client's
    PUBACKs back. ``sever()`` drops every connection, as a broker node going away does."""

    def __init__(self, upstream_port: int, renumber: bool = True):
        import threading
        self.upstream_port = upstream_port
        self.renumber = renumber  # False: only a proxy that can sever connections
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.renumbered = 0
        self.accepted = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.upstream_port))
            ids: dict[int, int] = {}  # our packet id -> the broker's, for this connection
            with self._lock:
                self.connections += [client, broker]
                self.accepted += 1
                first_id = 40_000 + 1_000 * self.accepted
            threading.Thread(target=self._pump,
                             args=(broker, client, ids, first_id if self.renumber else None),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(client, broker, ids, None),
                             daemon=True).start()

    @staticmethod
    def _packets(source: socket.socket):
        """(first byte, remaining-length bytes, body) of each MQTT packet read from source."""
        buffer = bytearray()
        while True:
            packet = RenumberingProxy._split(buffer)
            if packet is not None:
                yield packet
                continue
            data = source.recv(65536)
            if not data:
                return
            buffer += data

    @staticmethod
    def _split(buffer: bytearray):
        length, multiplier = 0, 1
        for at in range(1, min(5, len(buffer))):
            length += (buffer[at] & 0x7F) * multiplier
            multiplier *= 128
            if not buffer[at] & 0x80:
                end = at + 1 + length
                if len(buffer) < end:
                    return None
                packet = (buffer[0], bytes(buffer[1:at + 1]), bytearray(buffer[at + 1:end]))
                del buffer[:end]
                return packet
        return None

    def _pump(self, source, target, ids: dict[int, int], next_id: int | None) -> None:
        downstream = next_id is not None
        try:
            for first, length, body in self._packets(source):
                kind, qos = first >> 4, (first >> 1) & 3
                if downstream and kind == 3 and qos == 1:  # PUBLISH to the client
                    at = 2 + int.from_bytes(body[:2], "big")
                    with self._lock:
                        ids[next_id] = int.from_bytes(body[at:at + 2], "big")
                        self.renumbered += 1
                    body[at:at + 2] = next_id.to_bytes(2, "big")
                    next_id += 1
                elif not downstream and kind == 4:  # PUBACK from the client
                    ours = int.from_bytes(body[:2], "big")
                    with self._lock:
                        body[:2] = ids.pop(ours, ours).to_bytes(2, "big")
                target.sendall(bytes([first]) + length + bytes(body))
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.close()
                except OSError:
                    pass

    def sever(self) -> None:
        with self._lock:
            connections, self.connections = self.connections, []
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            except OSError:
                pass

    def close(self) -> None:
        self.sever()
        self.server.close()
