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


def init_app(app: Flask) -> None:
    app.cli.add_command(checklists_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(serve)
    from sensors.cli import sensors_cli
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
def verify_audit():
    """Check the audit chain and every record; exit 1 naming what was altered or removed."""
    from app.audit import verify
    count, problems = verify(db.session)
    for problem in problems:
        click.echo(f"TAMPERED  {problem}", err=True)
    if problems:
        click.echo(f"audit chain: {len(problems)} problem(s) in {count} links", err=True)
        sys.exit(1)
    click.echo(f"audit chain intact: {count} links verified")


def demo_credentials_path() -> Path:
    return Path(current_app.instance_path) / "demo-credentials.json"


@click.command("seed-demo")
@with_appcontext
def seed_demo():
    """Create the demo kitchen on an empty database (prints its PINs and passwords)."""
    from app.demo import seed
    path = demo_credentials_path()
    created = seed(db.session, current_app.config["BRIGADE_DEFAULT_TIMEZONE"])
    if created is None:
        click.echo("demo kitchen: database already has a site; nothing seeded")
    else:
        db.session.commit()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(created, indent=2, ensure_ascii=False))
        path.chmod(0o600)
        click.echo("demo kitchen created")
    print_demo_credentials()


def print_demo_credentials() -> None:
    path = demo_credentials_path()
    if not path.exists():
        return
    people = json.loads(path.read_text())
    click.echo("\n  Demo kitchen logins (kept in %s):" % path)
    for p in people:
        login = f"  email {p['email']}  password {p['password']}" if p.get("email") else ""
        click.echo(f"    {p['role']:9} {p['name']:12} PIN {p['pin']}{login}")
    click.echo("")


@click.command("serve")
@with_appcontext
@click.option("--host", default=None, help="Address to listen on (default BRIGADE_HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default BRIGADE_PORT, 8000).")
def serve(host, port):
    """Serve Brigade with the waitress production server."""
    import waitress
    cfg = current_app.config
    host, port = host or cfg["BRIGADE_HOST"], port or cfg["BRIGADE_PORT"]
    print_demo_credentials()
    click.echo(f"Brigade is serving on http://{host}:{port}/  (tablet: /pin, head chef: /login)")
    waitress.serve(current_app._get_current_object(), host=host, port=port,
                   threads=cfg["BRIGADE_THREADS"], ident="Brigade")
