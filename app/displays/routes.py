"""Views: the wall display itself (token in the URL, no login) and its settings page.

The display token opens these two views and nothing else: it is not a session, sets no
cookie, and every other view still asks for a login.
"""
from __future__ import annotations

from flask import (current_app, flash, redirect, render_template, request, url_for)
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app.displays import bp
from app.displays.board import board_json
from app.displays.tokens import LOCALES, create_display, live_display, note_seen, revoke_display
from app.errors import OperationError
from app.live.changes import conditional_headers, etag
from app.models import DisplayToken, Role, Site, db, utcnow
from app.security import public, roles_required
from app.web import current_site, site_row_or_404

#: Who sets displays up: the head chef and the admin (and an owner).
display_managers = roles_required(*(r for r in (Role.HEAD_CHEF, Role.ADMIN,
                                                getattr(Role, "OWNER", None)) if r),
                                  password=True)
#: How often a screen asks (milliseconds), and after how long without an answer it shows
#: itself disconnected and every tile stale.
POLL_MS = 500
STALE_CHANNEL_MS = 5000



def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/display/<token>")
@public
def board(token: str):
    """The board's page: an empty frame that display.js fills from the live channel."""
    seen = live_display(db.session, token)
    if seen is None:
        db.session.rollback()
        return _no_store(current_app.make_response(
            (render_template("displays/gone.html"), 404)))
    site = db.session.get(Site, seen.site_id)
    with force_locale(seen.locale):
        page = render_template("displays/board.html", site=site, locale=seen.locale,
                               live_url=url_for("displays.live", token=token),
                               poll_ms=POLL_MS, stale_ms=STALE_CHANNEL_MS)
    db.session.rollback()
    return _no_store(current_app.make_response(page))


@bp.get("/display/<token>/live")
@public
def live(token: str):
    """The board's channel: 304 while nothing changed, else the whole board as JSON."""
    seen = live_display(db.session, token)
    if seen is None:
        db.session.rollback()
        return _no_store(current_app.response_class('{"gone": true}', status=404,
                                                     mimetype="application/json"))
    now = utcnow()
    if note_seen(db.session, seen, now):
        db.session.commit()
        current_app.extensions["brigade_live_fastpath"].forget(seen.id)
    else:
        db.session.rollback()
    tag = etag(seen.version)
    if request.if_none_match.contains(tag):
        return conditional_headers(current_app.response_class(status=304), tag)

    def make(memo: dict) -> tuple[str, bytes]:
        try:
            return board_json(db.session, seen.site_id, seen.locale, memo)
        finally:
            db.session.rollback()
    boards = current_app.extensions["brigade_live_fastpath"].boards
    board = boards.get((seen.site_id, seen.locale), tag, make)  # this change or newer
    return conditional_headers(current_app.response_class(board.body, mimetype="application/json"),
                               board.tag)


# --- settings: the head chef's or admin's list of displays ------------------------------------

def _settings_page(new: tuple[DisplayToken, str] | None = None, status: int = 200):
    site = current_site()
    displays = db.session.execute(select(DisplayToken).where(DisplayToken.site_id == site.id)
                                  .order_by(DisplayToken.created_at.desc())).scalars().all()
    url = qr = None
    if new is not None:
        import segno
        url = url_for("displays.board", token=new[1], _external=True)
        qr = segno.make(url, error="m").svg_inline(scale=6, dark="#000", light="#fff")
    response = current_app.make_response((render_template(
        "displays/settings.html", site=site, displays=displays, new=new and new[0], url=url, qr=qr,
        locales=LOCALES), status))
    return _no_store(response)  # a new display's URL is shown once: out of every cache


@bp.get("/settings/displays")
@display_managers
def settings():
    return _settings_page()


@bp.post("/settings/displays")
@display_managers
def create():
    try:
        new = create_display(db.session, current_site(), request.form.get("name", ""),
                             request.form.get("locale", ""), current_user)
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("displays.settings"))
    db.session.commit()
    return _settings_page(new=new, status=201)


@bp.post("/settings/displays/<int:display_id>/revoke")
@display_managers
def revoke(display_id: int):
    display = site_row_or_404(DisplayToken, display_id, current_site())
    revoke_display(db.session, display, utcnow())
    db.session.commit()
    current_app.extensions["brigade_live_fastpath"].forget(display.id)
    flash(_("Display %(name)s switched off: its screen loses the board within seconds.",
            name=display.name), "ok")
    return redirect(url_for("displays.settings"))


