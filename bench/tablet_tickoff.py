"""Benchmark: the tablet's tick-off request under 30 concurrent simulated tablets.

    .venv/bin/python bench/tablet_tickoff.py            # 30 tablets, 3 x 8 s, about a minute
    .venv/bin/python bench/tablet_tickoff.py --pace 1   # each tablet tapping once a second
    .venv/bin/python bench/tablet_tickoff.py --help

Not a timed test: it prints a table and writes ``bench/results/tablet_tickoff.json``.
The target (from the issue) is a server p95 of 50 ms or less on SQLite.

What it does, in order:

1. Prepares a throwaway instance the way an installation does, with the CLI:
   ``flask db upgrade``, ``flask checklists load --dir`` (the project's checklists plus a
   benchmark-only copy of "serving hygiene" with one schedule per tablet, a slot every 10
   minutes, each open all day, so runs can be opened *now* without pinning a clock), and
   ``flask seed-demo`` (whose PINs it reads from the instance folder).
2. Serves the web app alone with waitress in a separate process (so the load generator
   does not share the server's GIL): the same ``waitress.serve`` call as ``flask serve``,
   without the broker, ingest and simulator that command starts beside it.
3. Logs 30 ``requests`` sessions in with the PIN pad, CSRF on as in production (the
   token comes from the page, as the browser's does). Each tablet opens its own run with
   the real "Start" form and then ticks the run's pass/fail items as HTMX does
   (``POST /runs/<id>/items/<item>``, ``HX-Request``), alternating pass and fail so
   every request records a new answer. After three rounds of its items (24 answers, a
   generous real run) a tablet starts a fresh run, so runs stay kitchen-sized.
4. For each repetition, measures a baseline phase (``GET /healthz``: public, no
   database; the server's floor under the same 30-way concurrency) and then a tick-off
   phase. Server latency is the app's ``Server-Timing: app;dur=`` header; client
   latency is the round trip seen by the tablet (it includes waitress's queue and the
   client's own share of the CPU). Medians over the repetitions are reported, with the
   server's CPU per request and the machine's load average, since a busy machine moves
   every figure.

By default the tablets tap back to back: the stress case, where the server is saturated
and latency is mostly waiting in line (30 tablets / throughput). ``--pace 1`` has each
tablet tap once a second, a brisk cook, which is the latency a kitchen would feel.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import os
import platform
import re
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tablet_tickoff.json"
TARGET_P95_MS = 50.0
CHECKLIST_KEY = "bench_tickoff"
ROUNDS_PER_RUN = 3
SERVER_TIMING = re.compile(r"\bapp;dur=([0-9.]+)")
CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')
PERSON_TILE = re.compile(r'href="/pin/(\d+)"[^>]*>\s*<span class="person-name">([^<]+)</span>')
PASSFAIL_FORM = re.compile(r'action="/runs/\d+/items/(\d+)"[^>]*class="choice-row"')


# --- the server ------------------------------------------------------------------------------

def serve_forever() -> None:
    """The benchmark's server process: Brigade's web app alone, on waitress."""
    sys.path.insert(0, str(ROOT))
    import waitress

    from app import create_app
    app = create_app()
    cfg = app.config
    waitress.serve(app, host="127.0.0.1", port=cfg["BRIGADE_PORT"], threads=cfg["BRIGADE_THREADS"],
                   ident="Brigade")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_schedules(tablets: int) -> list[dict]:
    """One schedule per tablet, a slot every 10 minutes, each open all day (1440 minutes)."""
    return [{"key": f"bench_{n:02d}", "name": {"en": f"Benchmark tablet {n}", "zh": f"基准平板 {n}"},
             "every_minutes": 10, "from": "00:00", "until": "23:50", "window_minutes": 1440,
             "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}
            for n in range(1, tablets + 1)]


def write_definitions(folder: Path, tablets: int) -> None:
    """The project's checklists, plus serving hygiene's items under benchmark schedules."""
    import yaml
    shutil.copytree(ROOT / "checklists", folder)
    hygiene = yaml.safe_load((folder / "serving_hygiene.yaml").read_text(encoding="utf-8"))
    hygiene.update(key=CHECKLIST_KEY, title={"en": "Benchmark tick-off", "zh": "基准勾选"},
                   schedules=bench_schedules(tablets))
    (folder / f"{CHECKLIST_KEY}.yaml").write_text(
        "# Written by bench/tablet_tickoff.py; never loaded into a real kitchen.\n"
        + yaml.safe_dump(hygiene, allow_unicode=True, sort_keys=False), encoding="utf-8")


class Server:
    """A prepared instance folder and database, and the waitress process serving them."""

    def __init__(self, workdir: Path, threads: int | None, tablets: int):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, FLASK_APP="app", BRIGADE_ENV="production",
                        BRIGADE_INSTANCE_PATH=str(workdir / "instance"),
                        BRIGADE_DATABASE_URL=f"sqlite:///{workdir / 'brigade.db'}",
                        BRIGADE_SECRET_KEY=secrets.token_hex(32),
                        BRIGADE_AUDIT_KEY=secrets.token_hex(32), BRIGADE_PORT=str(self.port),
                        BRIGADE_HOST="127.0.0.1", BRIGADE_SIMULATE="false",
                        # A run lasts minutes; the tablets must not be locked out half-way.
                        BRIGADE_TABLET_IDLE_SECONDS="3600")
        if threads is not None:
            self.env["BRIGADE_THREADS"] = str(threads)
        sys.path.insert(0, str(ROOT))
        import config
        self.threads = config.load(workdir / "instance", self.env)["BRIGADE_THREADS"]
        self.tablets = tablets
        self.process: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def flask(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def prepare(self) -> list[dict]:
        """Create the database, load the definitions, seed the demo kitchen; return its PINs."""
        definitions = self.workdir / "checklists"
        write_definitions(definitions, self.tablets)
        self.flask("db", "upgrade")
        self.flask("checklists", "load", "--dir", str(definitions))
        self.flask("seed-demo")
        return json.loads((self.workdir / "instance" / "demo-credentials.json").read_text())

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=ROOT,
                                        env=self.env, stdout=self.log.open("wb"),
                                        stderr=subprocess.STDOUT)
        import requests
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log.read_text()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise SystemExit(f"the server did not answer within 30 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the tablets -----------------------------------------------------------------------------

class BenchError(RuntimeError):
    """The app answered something a tablet did not expect."""


def slot_starts(schedule: dict, timezone: str, now: dt.datetime) -> list[str]:
    """This schedule's slots that have started, newest first (today's, then yesterday's)."""
    from app.checklists.schedules import slots_for_day
    today = now.astimezone(ZoneInfo(timezone)).date()
    slots = [s for day in (today, today - dt.timedelta(days=1))
             for s in slots_for_day([schedule], day, timezone) if s.start <= now]
    return [s.start.isoformat() for s in sorted(slots, key=lambda s: s.start, reverse=True)]


class Tablet:
    """One kitchen tablet: a logged-in session on its own schedule's runs."""

    def __init__(self, url: str, person_id: int, pin: str, schedule: dict, timezone: str):
        import requests
        self.url = url
        self.http = requests.Session()
        self.person_id, self.pin = person_id, pin
        self.schedule = schedule
        self.slots = iter(slot_starts(schedule, timezone, dt.datetime.now(dt.timezone.utc)))
        self.token = ""
        self.run_id: int | None = None
        self.items: list[int] = []
        self.step = 0  # ticks on the current run
        self.opened_runs = 0

    def _check(self, response, expected: int = 200):
        if response.status_code != expected:
            raise BenchError(f"{response.request.method} {response.request.url}: "
                             f"{response.status_code} (expected {expected})\n{response.text[:500]}")
        return response

    def log_in(self) -> None:
        page = self._check(self.http.get(f"{self.url}/pin/{self.person_id}"))
        self.token = CSRF_INPUT.search(page.text).group(1)
        self._check(self.http.post(f"{self.url}/pin/{self.person_id}", allow_redirects=False,
                                   data={"csrf_token": self.token, "pin": self.pin}), 302)

    def open_run(self) -> None:
        """Tap "Start" on the next slot, then load the run page as the browser would."""
        slot = next(self.slots, None)
        if slot is None:
            raise BenchError("no more slots to open runs on: shorten --duration")
        response = self._check(self.http.post(
            f"{self.url}/runs/open", allow_redirects=False,
            data={"csrf_token": self.token, "checklist": CHECKLIST_KEY,
                  "schedule": self.schedule["key"], "slot": slot}), 302)
        match = re.search(r"/runs/(\d+)$", response.headers.get("Location", ""))
        if match is None:
            raise BenchError(f"opening a run went to {response.headers.get('Location')!r}")
        self.run_id, self.step = int(match.group(1)), 0
        page = self._check(self.http.get(f"{self.url}/runs/{self.run_id}"))
        self.items = [int(i) for i in PASSFAIL_FORM.findall(page.text)]
        if not self.items:
            raise BenchError("the run page has no pass/fail items")
        self.opened_runs += 1

    def tick(self) -> tuple[float, float]:
        """One tap on pass or fail; returns (client ms, server ms)."""
        if self.run_id is None or self.step >= ROUNDS_PER_RUN * len(self.items):
            self.open_run()
        round_, index = divmod(self.step, len(self.items))
        item = self.items[index]
        value = ("pass", "fail")[(index + round_) % 2]  # each item flips every round
        self.step += 1
        started = time.perf_counter()
        response = self.http.post(
            f"{self.url}/runs/{self.run_id}/items/{item}",
            data={"csrf_token": self.token, "value": value},
            headers={"HX-Request": "true", "HX-Target": f"item-{item}",
                     "HX-Current-URL": f"{self.url}/runs/{self.run_id}", "X-CSRFToken": self.token})
        client_ms = (time.perf_counter() - started) * 1000
        self._check(response)
        if f'data-outcome="{value}"' not in response.text:
            raise BenchError(f"tick-off of item {item} did not come back as {value}")
        return client_ms, server_ms(response)

    def health(self) -> tuple[float, float]:
        started = time.perf_counter()
        response = self.http.get(f"{self.url}/healthz")
        client_ms = (time.perf_counter() - started) * 1000
        self._check(response)
        return client_ms, server_ms(response)


def server_ms(response) -> float:
    match = SERVER_TIMING.search(response.headers.get("Server-Timing", ""))
    if match is None:
        raise BenchError(f"{response.request.url}: no Server-Timing header")
    return float(match.group(1))


def log_in_tablets(server: Server, credentials: list[dict], count: int,
                   timezone: str) -> list[Tablet]:
    """``count`` sessions, the demo people taking turns (logins are per session)."""
    import requests
    pins = {c["name"]: c["pin"] for c in credentials}
    page = requests.get(f"{server.url}/pin", timeout=10)
    people = [(int(pid), name) for pid, name in PERSON_TILE.findall(page.text) if name in pins]
    if not people:
        raise BenchError("no demo people on the PIN pad")
    schedules = bench_schedules(count)
    tablets = [Tablet(server.url, people[i % len(people)][0], pins[people[i % len(people)][1]],
                      schedules[i], timezone) for i in range(count)]
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        list(pool.map(Tablet.log_in, tablets))
    return tablets


# --- measuring -------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time a process has used (Linux), to tell work from waiting."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(tablets: list[Tablet], action: str, seconds: float,
              server_pid: int | None = None, pace: float = 0.0) -> dict:
    """Every tablet repeats ``action`` for ``seconds``; returns the samples.

    Back to back by default (the stress case); with ``pace`` a tablet taps at most once
    every ``pace`` seconds, the tablets spread evenly over the first interval.
    """
    barrier = threading.Barrier(len(tablets) + 1)
    box: dict = {}

    def work(index: int, tablet: Tablet):
        samples = []
        do = getattr(tablet, action)
        barrier.wait()
        deadline = box["deadline"]
        next_at = time.perf_counter() + pace * index / len(tablets)
        while time.perf_counter() < deadline:
            if pace:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += pace
                if time.perf_counter() >= deadline:
                    break
            samples.append(do())
        return samples

    with concurrent.futures.ThreadPoolExecutor(len(tablets)) as pool:
        futures = [pool.submit(work, i, t) for i, t in enumerate(tablets)]
        box["deadline"] = time.perf_counter() + seconds  # set before anyone passes the barrier
        cpu_before = cpu_seconds(server_pid) if server_pid else None
        started = time.perf_counter()
        barrier.wait()
        samples = [s for f in futures for s in f.result()]
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(server_pid) if server_pid else None
    cpu = cpu_after - cpu_before if cpu_before is not None and cpu_after is not None else None
    return {"client": [c for c, _ in samples], "server": [s for _, s in samples],
            "elapsed": elapsed, "server_cpu": cpu}


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def describe(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50": percentile(ordered, 50), "p95": percentile(ordered, 95),
            "p99": percentile(ordered, 99), "max": ordered[-1],
            "mean": statistics.fmean(ordered)}


def summarise(phase: dict) -> dict:
    count = len(phase["server"])
    out = {"requests": count, "per_second": count / phase["elapsed"],
           "server_ms": describe(phase["server"]), "client_ms": describe(phase["client"])}
    if phase["server_cpu"] is not None:
        # CPU the server burned per request, and how busy it was (1.0 = one core):
        # under the GIL a Python server cannot use much more than one core.
        out["server_cpu_ms_per_request"] = phase["server_cpu"] * 1000 / max(count, 1)
        out["server_cpu_cores"] = phase["server_cpu"] / phase["elapsed"]
    return out


def median_of(reps: list[dict], kind: str) -> dict:
    def med(path):
        values = []
        for rep in reps:
            value = rep[kind]
            for key in path:
                value = value[key]
            values.append(value)
        return statistics.median(values)
    out = {"requests": med(["requests"]), "per_second": med(["per_second"])}
    if all("server_cpu_cores" in rep[kind] for rep in reps):
        out["server_cpu_ms_per_request"] = med(["server_cpu_ms_per_request"])
        out["server_cpu_cores"] = med(["server_cpu_cores"])
    for side in ("server_ms", "client_ms"):
        out[side] = {stat: med([side, stat]) for stat in ("p50", "p95", "p99", "max", "mean")}
    return out


def machine() -> dict:
    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "")
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu,
            "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()), "python": platform.python_version(),
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            "sqlite": sqlite3.sqlite_version}


def audit_check(server: Server) -> dict:
    """The chain must be intact after the load: ``flask audit verify``."""
    done = subprocess.run([sys.executable, "-m", "flask", "audit", "verify"], cwd=ROOT,
                          env=server.env, capture_output=True, text=True)
    return {"ok": done.returncode == 0, "output": (done.stdout + done.stderr).strip()[-300:]}


def rounded(value):
    """Milliseconds to two decimals for the JSON file: more digits would be noise."""
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def table(result: dict) -> str:
    cfg = result["config"]
    pace = (f"each tapping every {cfg['pace_seconds']:g} s" if cfg["pace_seconds"]
            else "tapping back to back")
    lines = [f"Brigade tablet tick-off: {cfg['tablets']} tablets {pace}, waitress {cfg['threads']} "
             f"threads, SQLite (WAL); median of {cfg['repeats']} x {cfg['seconds']:g} s per phase",
             f"machine: {result['machine']['nproc']} CPUs, Python {result['machine']['python']}, "
             f"SQLite {result['machine']['sqlite']}", "",
             f"{'':28}{'requests':>9}{'req/s':>8}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}  (ms)"]
    names = {"tickoff": "tick-off POST /runs/…/items", "baseline": "baseline GET /healthz"}
    for kind in ("tickoff", "baseline"):
        m = result["median"][kind]
        for side, label in (("server_ms", "server (app;dur)"), ("client_ms", "client round trip")):
            s = m[side]
            lines.append(f"{names[kind] if side == 'server_ms' else '':28}"
                         f"{m['requests'] if side == 'server_ms' else '':>9}"
                         f"{format(m['per_second'], '.0f') if side == 'server_ms' else '':>8}"
                         f"{s['p50']:>8.1f}{s['p95']:>8.1f}{s['p99']:>8.1f}{s['max']:>8.1f}  {label}")
    tick = result["median"]["tickoff"]
    if "server_cpu_cores" in tick:
        lines += ["", f"server CPU per tick-off {tick['server_cpu_ms_per_request']:.1f} ms; "
                      f"server busy {tick['server_cpu_cores']:.2f} cores during the tick-off phase "
                      f"(load average before the run: {result['machine']['loadavg_before']})"]
    per_rep = ", ".join(f"{rep['tickoff']['server_ms']['p95']:.1f}" for rep in result["repetitions"])
    target = result["target"]
    lines += ["", f"tick-off server p95 per repetition: {per_rep} ms",
              f"target: server p95 <= {target['p95_ms']:g} ms -> "
              f"{'met' if target['met'] else 'NOT met'} ({target['measured_p95_ms']:.1f} ms)"]
    if "audit" in result:
        lines.append(f"audit chain after the load: {result['audit']['output'].splitlines()[-1]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure the tablet's tick-off request under concurrent simulated tablets "
                    "against the real app on waitress and SQLite (target: server p95 <= 50 ms).")
    parser.add_argument("--tablets", type=int, default=30, help="concurrent tablets (default 30)")
    parser.add_argument("--threads", type=int, default=None,
                        help="waitress threads (default: the app's BRIGADE_THREADS, 16)")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="length of each measured phase (default 8)")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds (default 2)")
    parser.add_argument("--pace", type=float, default=0.0,
                        help="seconds between one tablet's taps (default 0: back to back, the "
                             "stress case; a brisk cook taps about once a second)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"JSON results (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--no-audit", action="store_true",
                        help="skip `flask audit verify` on the database afterwards")
    parser.add_argument("--keep", action="store_true", help="keep the temporary instance folder")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_forever()
        return 0
    if args.tablets < 1 or args.repeats < 1 or args.seconds <= 0:
        parser.error("--tablets, --repeats and --seconds must be positive")

    sys.path.insert(0, str(ROOT))
    workdir = Path(tempfile.mkdtemp(prefix="brigade-bench-"))
    server = Server(workdir, args.threads, args.tablets)
    began = time.monotonic()
    facts = machine()  # before the run: the load average says what else the machine was doing
    try:
        print(f"preparing an instance in {workdir} …", flush=True)
        credentials = server.prepare()
        server.start()
        timezone = server.env.get("BRIGADE_DEFAULT_TIMEZONE", "Europe/London")
        tablets = log_in_tablets(server, credentials, args.tablets, timezone)
        print(f"{len(tablets)} tablets logged in (server pid {server.process.pid}); "
              f"warming up {args.warmup:g} s …", flush=True)
        pid = server.process.pid
        run_phase(tablets, "health", min(args.warmup, 1.0))
        run_phase(tablets, "tick", args.warmup)
        repetitions = []
        for n in range(1, args.repeats + 1):
            baseline = summarise(run_phase(tablets, "health", args.seconds, pid, args.pace))
            tickoff = summarise(run_phase(tablets, "tick", args.seconds, pid, args.pace))
            repetitions.append({"baseline": baseline, "tickoff": tickoff})
            print(f"  repetition {n}: tick-off p95 {tickoff['server_ms']['p95']:.1f} ms server, "
                  f"{tickoff['client_ms']['p95']:.1f} ms client, {tickoff['per_second']:.0f} req/s; "
                  f"baseline p95 {baseline['server_ms']['p95']:.2f} ms server", flush=True)
        runs_opened = sum(t.opened_runs for t in tablets)
    finally:
        server.stop()
    median = {kind: median_of(repetitions, kind) for kind in ("tickoff", "baseline")}
    result = {
        "benchmark": "tablet_tickoff",
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": facts,
        "config": {"tablets": args.tablets, "threads": server.threads, "seconds": args.seconds,
                   "pace_seconds": args.pace,
                   "repeats": args.repeats, "warmup_seconds": args.warmup,
                   "database": "sqlite (WAL, synchronous=NORMAL)", "csrf": True,
                   "answers_per_run": ROUNDS_PER_RUN * len(tablets[0].items),
                   "request": "POST /runs/<run>/items/<item> value=pass|fail, HX-Request",
                   "baseline": "GET /healthz (public, no database)"},
        "target": {"p95_ms": TARGET_P95_MS, "measured_p95_ms": median["tickoff"]["server_ms"]["p95"],
                   "met": median["tickoff"]["server_ms"]["p95"] <= TARGET_P95_MS},
        "median": median,
        "repetitions": repetitions,
        "runs_opened": runs_opened,
    }
    if not args.no_audit:
        result["audit"] = audit_check(server)
    result["wall_seconds"] = round(time.monotonic() - began, 1)
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(rounded(result), indent=2, ensure_ascii=False) + "\n")
    print()
    print(table(result))
    print(f"\nwritten to {args.output}")
    return 0 if result.get("audit", {"ok": True})["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
