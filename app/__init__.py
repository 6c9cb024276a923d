"""Brigade: serving-hygiene checklists and fridge monitoring for restaurant kitchens."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import Flask, g, request

import config
from app.extensions import babel, csrf, db, login_manager, migrate

ROOT = Path(__file__).resolve().parent.parent


#: Scripts, styles and images from the app itself only (HTMX and plotly.js are served from
#: static/), no inline or evaluated script, never inside another site's frame.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def _owner_only_database(url: str) -> None:
    """The SQLite file readable by its owner only (0600), created so if missing: SQLite gives
    its -wal and -shm files the database file's permissions, so they are 0600 too. PIN hashes
    and every record are in it; a shared machine's other users must not read it."""
    from sqlalchemy.engine import make_url
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            file.chmod(0o600)


def create_app(test_config: dict | None = None) -> Flask:
    """Create the web application; starts no background work."""
    app = Flask(__name__, instance_path=os.environ.get("BRIGADE_INSTANCE_PATH")
                or str(ROOT / "instance"), template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.from_mapping(config.load(app.instance_path))
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY") or not app.config.get("BRIGADE_AUDIT_KEY"):
        raise config.ConfigError(
            "No secret key: set BRIGADE_SECRET_KEY and BRIGADE_AUDIT_KEY, or run "
            "`python -m app.instance init-secrets` to generate them into the instance folder "
            f"({app.instance_path})")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        Path(app.instance_path).mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only_database(app.config["SQLALCHEMY_DATABASE_URI"])

    from werkzeug.routing import IntegerConverter

    class BoundedInt(IntegerConverter):
        """Ids fit a 32-bit column: a larger number in a URL is a 404, not a database error."""

        def __init__(self, map, *args, **kwargs):
            kwargs.setdefault("max", 2**31 - 1)
            super().__init__(map, *args, **kwargs)
    app.url_map.converters["int"] = BoundedInt

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale,
                   default_translation_directories=str(ROOT / "translations"))
    login_manager.init_app(app)
    with app.app_context():
        from app.models.base import configure_engine
        from app.sqlite_writes import serialise_writers
        configure_engine(db.engine)
        serialise_writers(db.engine)

    # First, so the time covers the login, idle-lock and device hooks too.
    _add_server_timing(app)
    _add_security_headers(app)
    hops = app.config.get("BRIGADE_TRUSTED_PROXIES", 0)
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    _add_health_check(app)
    from app import models  # noqa: F401  (every table, the device path's included)
    from app import auth, checklists, devices, records, timers
    devices.init_app(app)
    auth.init_app(app)
    app.register_blueprint(checklists.bp)
    app.register_blueprint(records.bp)
    app.register_blueprint(timers.bp)
    from app import displays, live  # the one live channel; wall displays on it
    live.init_app(app)
    displays.init_app(app)
    from app import alerts; app.register_blueprint(alerts.bp)  # noqa: E702 (list, page, tablet banner)
    from app import units; units.init_app(app)  # noqa: E702 (units, sensors, HTTP ingest)
    from app import calibration; app.register_blueprint(calibration.bp)  # noqa: E702 (thermometer checks)
    from app import reports; app.register_blueprint(reports.bp)  # noqa: E702 (report, unit pages, glance)
    from app import people; app.register_blueprint(people.bp)  # noqa: E702 (staff, sites)
    from app import rules; app.register_blueprint(rules.bp)  # noqa: E702 (rule set, review)

    from app import cli
    cli.init_app(app)
    _add_template_helpers(app)
    return app


def _select_locale():
    from flask import has_request_context
    from flask_login import current_user
    if not has_request_context():
        return None  # jobs and commands: the default locale
    if current_user and current_user.is_authenticated:
        return current_user.locale
    return request.accept_languages.best_match(["en", "zh"]) or "en"


def _policy() -> str:
    """The CSP, letting a page also reach the live socket (app.live.socket) when there is one."""
    from app.live.socket import socket_origin
    origin = socket_origin()
    if origin is None:
        return CONTENT_SECURITY_POLICY
    return CONTENT_SECURITY_POLICY.replace("connect-src 'self'", f"connect-src 'self' {origin}")


def _add_security_headers(app: Flask) -> None:
    @app.after_request
    def _security_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", _policy())
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        if app.config["SESSION_COOKIE_SECURE"] or request.is_secure:  # served over HTTPS
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response


def _add_server_timing(app: Flask) -> None:
    # Server-side time per request, for the benchmark and for anyone with devtools open.
    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _server_timing(response):
        started = g.pop("request_started", None)
        if started is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.2f}"
        return response


def _add_health_check(app: Flask) -> None:
    from app.security import public

    # Public and database-free: a load balancer's probe, and the benchmark's floor.
    @app.get("/healthz")
    @public
    def healthz():
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}

    # Browsers ask for /favicon.ico whatever the page says: the app's icon, not a 404.
    @app.get("/favicon.ico")
    @public
    def favicon():
        return app.send_static_file("favicon.svg")


def _add_template_helpers(app: Flask) -> None:
    from app import formatting
    from app.live.socket import live_socket
    from flask_babel import get_locale
    app.jinja_env.globals.update(get_locale=get_locale, local_time=formatting.local_time, show_temp=formatting.show_temp,
                                 bilingual=formatting.bilingual, slot_label=formatting.slot_label,
                                 reading_age=formatting.reading_age,
                                 label=formatting.label, live_socket=live_socket)
    app.jinja_env.filters["local_time"] = formatting.local_time
    from app.alerts.channels import target_for_log
    # Webhook URLs often carry a secret in their path: pages show them as the logs do.
    app.jinja_env.globals["shown_target"] = target_for_log
    logging.getLogger(__name__).debug("template helpers registered")
