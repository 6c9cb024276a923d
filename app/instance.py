"""Prepare the instance folder: ``python -m app.instance init-secrets [--instance PATH]``.

Generates the session secret and the audit-chain key on first run (owner-only
files). It runs outside the app because the app refuses to start without them.
"""
from __future__ import annotations

import os
from pathlib import Path

import click

import config

ROOT = Path(__file__).resolve().parent.parent


@click.group()
def main():
    """Brigade instance-folder tasks."""


@main.command("init-secrets")
@click.option("--instance", "instance_path", type=click.Path(path_type=Path), default=None,
              help="Instance folder (default BRIGADE_INSTANCE_PATH or ./instance).")
def init_secrets(instance_path: Path | None):
    """Create instance/secret_key and instance/audit_key if they do not exist."""
    instance_path = instance_path or Path(os.environ.get("BRIGADE_INSTANCE_PATH")
                                          or ROOT / "instance")
    for name in ("secret_key", "audit_key"):
        if config.instance_secret(instance_path, name, create=False) is None:
            config.instance_secret(instance_path, name, create=True)
            click.echo(f"generated {instance_path / name}")
        else:
            click.echo(f"kept existing {instance_path / name}")


if __name__ == "__main__":
    main()
