"""Command-line commands: secrets, definitions, demo data, audit check, serving."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from app.models import db

checklists_cli = AppGroup("checklists", help="Checklist and rule definitions.")
audit_cli = AppGroup("audit", help="The tamper-evident audit chain.")
scheduler_cli = AppGroup("scheduler", help="The scheduled jobs (alerts, sweeps, retention).")


def init_app(app: Flask) -> None:
    app.cli.add_command(checklists_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(scheduler_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(setup)
    app.cli.add_command(serve)
    app.cli.add_command(live_command)
    from app.ingest import ingest_command
    from sensors.cli import sensors_cli
    sensors_cli.add_command(ingest_command)
    app.cli.add_command(sensors_cli)


@checklists_cli.command("load")
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="Folder of YAML definitions (default: the project's checklists/).")
def load_checklists(directory):
    """Load checklist and rule definitions; a changed file becomes a new version."""
    from app.checklists.definitions import DEFINITIONS_DIR, DefinitionError, load_all
    try:
        results = load_all(db.session, directory or DEFINITIONS_DIR)
    except DefinitionError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    for r in results:
        if r.status != "unchanged" or r.kind == "checklist":
            click.echo(f"{r.kind:9} {r.key:20} version {r.version}  {r.status}")


@audit_cli.command("verify")
@click.option("--expect", "anchors", multiple=True, metavar="SEQ:HASH",
              help="A head printed earlier by `flask audit head` (repeatable): the chain must "
                   "still contain that link unchanged. This catches links removed from the end "
                   "together with the head row, which the chain alone cannot show.")
@click.option("--anchors", "anchor_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An anchor file to check instead of BRIGADE_AUDIT_ANCHOR_FILE (repeatable): "
                   "e.g. the copy kept on another host.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document instead: {\"summary\": {links, sealed_hours, "
                   "problems, intact, text}, \"findings\": [{record, where, change, detail, "
                   "time_range: {from, to}}], \"notes\": [...]}. Same exit codes.")
def verify_audit(anchors, anchor_files, as_json):
    """Check the audit chain, every record, the sealed readings, the people, units and
    definitions records are read against, and the heads anchored outside the database.

    Each finding names the record (table and id, or sensor and hour for readings), what
    changed and the time affected (the record's time, or the sealed hour); the last line
    sums up: "N links and M sealed hours checked: K problem(s)" or "...: intact".
    Exit 0 if intact, 1 if anything was altered, removed or inserted."""
    from app.audit import Problem, verify
    from app.models import AuditRecord
    notes: list[str] = []
    counts: dict = {}
    count, problems = verify(db.session, notes=notes, anchor_files=list(anchor_files) or None,
                             counts=counts)
    for anchor in anchors:
        seq, _, digest = anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter(f"{anchor!r} is not SEQ:HASH as `flask audit head` prints it",
                                     param_hint="--expect")
        link = db.session.get(AuditRecord, int(seq))
        if link is None or link.hash != digest:
            problems.append(Problem(f"audit record #{seq}",
                                    "does not match the head recorded earlier (removed or rewritten)",
                                    {"table": "audit_records", "id": int(seq)},
                                    "removed" if link is None else "hash differs from the head "
                                    "recorded earlier (re-chained)"))
    late = _late_readings_note()
    notes += [late] if late else []
    checked = f"{count} links and {counts.get('sealed_hours', 0)} sealed hours checked"
    summary = f"{checked}: {len(problems)} problem(s)" if problems else f"{checked}: intact"
    if as_json:
        click.echo(json.dumps({
            "summary": {"links": count, "sealed_hours": counts.get("sealed_hours", 0),
                        "problems": len(problems), "intact": not problems, "text": summary},
            "findings": [problem.as_dict() for problem in problems], "notes": notes},
            ensure_ascii=False, indent=1))
        sys.exit(1 if problems else 0)
    for problem in problems:
        click.echo(f"TAMPERED  {problem}", err=True)
        found = problem.as_dict()
        span = found["time_range"]
        time = (span["from"] if span["from"] == span["to"] else
                f"{span['from'] or '…'} – {span['to'] or '…'}") if span["to"] else "not known"
        click.echo(f"          changed: {found['change']}; time: {time}", err=True)
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"audit verify: {summary}")
    if problems:
        sys.exit(1)


def _late_readings_note() -> str | None:
    from app.seals import late_readings
    seals, readings = late_readings(db.session)
    if readings:
        return (f"{readings} reading(s) arrived after their hour was sealed "
                f"(covered by {seals} late seal(s), not taken into the sealed hours)")
    return None


@audit_cli.command("rotate-key")
def audit_rotate_key():
    """Hand the chain to a new audit key.

    Set the new key as BRIGADE_AUDIT_KEY (or BRIGADE_AUDIT_KEY_FILE) and the old one in
    BRIGADE_AUDIT_PREVIOUS_KEYS (comma-separated), then run this once: it chains a key change,
    hashed with the old key, naming the new key's fingerprint. Keep the old key in
    BRIGADE_AUDIT_PREVIOUS_KEYS for as long as the old links are to be verified.
    """
    from app.audit import fingerprint, rotate_key
    from app.errors import OperationError
    try:
        change = rotate_key(db.session)
    except OperationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    import json
    old, new = json.loads(change.data)["fingerprint"]
    click.echo(f"audit key handed over: {old} -> {new} (this key: "
               f"{fingerprint(current_app.config['BRIGADE_AUDIT_KEY'].encode())}); keep the old "
               "key in BRIGADE_AUDIT_PREVIOUS_KEYS to verify the links before it")


@audit_cli.command("head")
@click.option("--anchor", is_flag=True, help="Also append it to BRIGADE_AUDIT_ANCHOR_FILE now.")
def audit_head(anchor):
    """Print the chain's head as SEQ:HASH, to keep outside the database (a logbook, an email)."""
    from app.anchors import anchor_head
    from app.models import AuditHead
    head = db.session.get(AuditHead, 1)
    click.echo(f"{head.seq}:{head.hash}" if head else "0:" + "0" * 64)
    if anchor:
        click.echo(anchor_head(db.session, force=True), err=True)
        db.session.commit()  # the retained MQTT copy, if configured, is queued in the outbox


@scheduler_cli.command("run")
def run_scheduler():
    """Run the scheduler until SIGTERM/SIGINT; it acts only while it holds the lock."""
    import logging
    import signal
    import threading

    from app.scheduler import Scheduler
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    scheduler = Scheduler(current_app._get_current_object())
    click.echo(f"scheduler {scheduler.leadership.holder}: waiting for the lock")
    scheduler.start()
    done.wait()
    scheduler.stop()


@scheduler_cli.command("jobs")
def list_jobs():
    """List the declared jobs and their last runs."""
    from sqlalchemy import select

    from app.models import JobRun
    from app.scheduler import _jobs
    for job in _jobs():
        last = db.session.execute(select(JobRun).where(JobRun.job_id == job.id)
                                  .order_by(JobRun.due_at.desc()).limit(1)).scalar_one_or_none()
        when = f"last {last.due_at:%Y-%m-%d %H:%M:%S} UTC: {last.outcome}" if last else "never run"
        click.echo(f"{job.id:18} every {job.seconds:>5}s  {when}")


def demo_credentials_path() -> Path:
    return Path(current_app.instance_path) / "demo-credentials.json"


@click.command("seed-demo")
@with_appcontext
def seed_demo():
    """Create the demo kitchen on an empty database; `flask serve` prints its logins."""
    from app.demo import seed
    path = demo_credentials_path()
    created = seed(db.session, current_app.config["BRIGADE_DEFAULT_TIMEZONE"])
    if created is None:
        click.echo("demo kitchen: database already has a site; nothing seeded")
        return
    db.session.commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(created, indent=2, ensure_ascii=False))
    path.chmod(0o600)
    # Printed once, by `flask serve` with the addresses to use them at (`make run` runs both).
    click.echo(f"demo kitchen created; its logins are printed when Brigade starts "
               f"(flask serve) and kept in {path}")


def print_demo_credentials(base_url: str | None = None) -> None:
    """The demo's logins with where to use them: once per start of `flask serve`."""
    path = demo_credentials_path()
    if base_url:
        click.echo(f"\n  Tablet (cooks: tap your name, then your PIN): {base_url}/pin")
        click.echo(f"  Head chef on a laptop (email and password):    {base_url}/login")
    if not path.exists():
        return
    people = json.loads(path.read_text())
    click.echo("\n  Demo kitchen logins (kept in %s):" % path)
    for p in people:
        login = f"  email {p['email']}  password {p['password']}" if p.get("email") else ""
        click.echo(f"    {p['role']:9} {p['name']:12} PIN {p['pin']}{login}")
    click.echo("")


@click.command("setup")
@with_appcontext
@click.option("--site-name", prompt="Kitchen's name", help="The site's name, as staff know it.")
@click.option("--timezone", prompt="Time zone (e.g. Europe/London, Asia/Shanghai)",
              help="IANA time zone of the kitchen: schedules and reports follow it.")
@click.option("--language", prompt="Language (en or zh)", type=click.Choice(["en", "zh"]),
              help="The admin's language (each person chooses their own later).")
@click.option("--temp-unit", prompt="Temperature unit (C or F)", type=click.Choice(["C", "F"]),
              help="How temperatures are shown at this site.")
@click.option("--admin-name", prompt="Admin's name", help="The first admin's name.")
@click.option("--admin-email", prompt="Admin's email", help="The first admin's login email.")
@click.option("--admin-password", prompt="Admin's password (10 characters or more)",
              hide_input=True, confirmation_prompt=True,
              help="Asked for, hidden, when not given (giving it here leaves it in the shell's "
                   "history).")
def setup(site_name, timezone, language, temp_unit, admin_name, admin_email, admin_password):
    """Set up a real kitchen on an empty database: its site and first admin (no demo data).

    Run `flask --app app db upgrade` first. Nothing that grants access is printed or written.
    """
    from app.errors import OperationError
    from app.setup import first_kitchen
    try:
        site, admin = first_kitchen(db.session, site_name=site_name, timezone=timezone,
                                    language=language, temp_unit=temp_unit, admin_name=admin_name,
                                    admin_email=admin_email, admin_password=admin_password)
    except OperationError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Kitchen {site.name!r} set up ({site.timezone}, °{site.temp_unit}); "
               f"{admin.name} signs in at /login with {admin.email}.")


@click.command("serve")
@with_appcontext
@click.option("--host", default=None, help="Address to listen on (default BRIGADE_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default BRIGADE_PORT, 8000).")
@click.option("--ingest/--no-ingest", default=True, show_default=True,
              help="Run MQTT ingest in this process (off when `flask sensors ingest` runs apart).")
@click.option("--broker/--no-broker", default=True, show_default=True,
              help="Start the embedded broker when BRIGADE_MQTT_HOST is unset.")
@click.option("--scheduler/--no-scheduler", default=True, show_default=True,
              help="Run the scheduler in this process (it acts only while holding the lock).")
@click.option("--live/--no-live", default=True, show_default=True,
              help="Run the live socket in this process on BRIGADE_LIVE_PORT (off when `flask "
                   "live` runs apart, or when BRIGADE_LIVE_PORT is 0).")
def serve(host, port, ingest, broker, scheduler, live):
    """Serve Brigade with waitress, with the broker, ingest, scheduler and simulator beside it."""
    import logging
    import signal

    import waitress

    from app.runner import start_background
    from sensors.broker import BrokerError
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = current_app.config
    host, port = host or cfg["BRIGADE_HOST"], port or cfg["BRIGADE_PORT"]
    app = current_app._get_current_object()

    def _interrupt(signum, frame):
        raise KeyboardInterrupt  # waitress returns on it; then the finally below stops the rest

    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _interrupt)
    background = socket = None
    try:
        try:
            background = start_background(app, broker=broker, ingest=ingest, scheduler=scheduler)
        except BrokerError as exc:
            raise click.ClickException(str(exc)) from None
        if live and cfg["BRIGADE_LIVE_PORT"]:
            from app.live.socket import LiveSocketServer
            try:
                socket = LiveSocketServer(app, host, cfg["BRIGADE_LIVE_PORT"]).start()
            except OSError as exc:  # screens still ask over HTTP: worse, but working
                logging.getLogger(__name__).warning(
                    "the live socket cannot listen on %s:%s (%s): screens ask over HTTP instead; "
                    "set BRIGADE_LIVE_PORT to a free port (0: none)", host,
                    cfg["BRIGADE_LIVE_PORT"], exc.strerror or exc)
                cfg["BRIGADE_LIVE_PORT"] = 0  # so pages name no socket that is not there
        click.echo(f"Brigade is serving on http://{host}:{port}/")
        if socket is not None:
            click.echo(f"  Live socket on ws://{host}:{socket.port}/ (wall displays and tablets "
                       "are pushed each change)")
        print_demo_credentials(f"http://{host}:{port}")
        click.echo(f"  Wall display: the head chef sets one up at http://{host}:{port}/settings/displays "
                   "and opens the address it shows (or its QR code) on the screen")
        waitress.serve(app, host=host, port=port, threads=cfg["BRIGADE_THREADS"], ident="Brigade")
    except KeyboardInterrupt:
        pass
    finally:
        if socket is not None:
            socket.stop()
        if background is not None:
            click.echo("stopping: scheduler, simulator, ingest, broker")
            background.stop()


@click.command("live")
@with_appcontext
@click.option("--host", default=None, help="Address to listen on (default BRIGADE_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="Port (default BRIGADE_LIVE_PORT; 8001 when that is 0).")
def live_command(host, port):
    """Run the live socket on its own (the production layout: web workers run `flask serve
    --no-live` and name this port, or BRIGADE_LIVE_SOCKET_URL, to their pages)."""
    import logging
    import signal
    import threading

    from app.live.socket import LiveSocketServer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = current_app.config
    port = port or cfg["BRIGADE_LIVE_PORT"] or 8001
    server = LiveSocketServer(current_app._get_current_object(), host or cfg["BRIGADE_HOST"], port)

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():  # (as a process of its own)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _interrupt)
    click.echo(f"Brigade's live socket on ws://{server.host}:{port}/")
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {server.host}:{port}: {exc.strerror or exc}")
