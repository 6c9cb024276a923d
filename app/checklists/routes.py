"""Tablet views: thin wrappers that parse input, call one operation and render."""
from __future__ import annotations

import datetime as dt

from flask import (abort, current_app, flash, make_response, redirect, render_template,
                   request, url_for)
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select, true
from werkzeug.exceptions import RequestEntityTooLarge

from app.checklists import bp
from app.checklists.definitions import current_definitions
from app.checklists.operations import (KEEP, SubmissionRefused, current_answers, due_today,
                                       find_slot, latest_answer, open_run, record_answer,
                                       photo_too_large, sensor_now, store_photo, submit_run)
from app.errors import OperationError
from app.devices import current_device_id
from app.models import (Answer, ChecklistItem, Photo, Role, RuleSuggestion, Run, Site, db,
                        utcnow)
from app.rules.operations import rules_then
from app.timers.operations import timers_context
from app.web import current_site, site_row_or_404


def _is_htmx() -> bool:
    return bool(request.headers.get("HX-Request"))


@bp.get("/")
def home():
    site, now = current_site(), utcnow()
    entries = due_today(db.session, site, now, current_definitions(db.session, site.id))
    groups = {status: [e for e in entries if e.status == status]
              for status in ("overdue", "due", "in_progress", "upcoming", "submitted", "verified")}
    context = dict(site=site, groups=groups, **timers_context(db.session, site, now))
    if _is_htmx() and request.args.get("part") == "due":
        return render_template("checklists/_due.html", **context)
    return render_template("checklists/home.html", **context)


@bp.post("/runs/open")
def open_slot():
    site = current_site()
    definition = next((d for d in current_definitions(db.session, site.id)
                       if d.key == request.form.get("checklist")), None)
    try:
        start = dt.datetime.fromisoformat(request.form.get("slot", ""))
    except ValueError:
        abort(400, "Bad slot time.")
    if definition is None or start.tzinfo is None:
        abort(400, "Unknown checklist or slot.")
    slot = find_slot(definition, site, request.form.get("schedule", ""), start)
    if slot is None:
        abort(400, "That checklist has no such slot.")
    try:
        run = open_run(db.session, site, definition.key, slot, current_user, current_device_id())
    except OperationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("checklists.home"))
    db.session.commit()
    return redirect(url_for("checklists.run", run_id=run.id))


def _run_context(run: Run, problems=None) -> dict:
    site, now = db.session.get(Site, run.site_id), utcnow()
    return dict(run=run, site=site, answers=current_answers(run), problems=problems or {},
                now=now, photo_max=current_app.config["BRIGADE_PHOTO_MAX_BYTES"],
                sensors=_sensors(run, site, run.definition.items, now),
                rules=rules_then(db.session, site, now))


def _sensors(run: Run, site: Site, items, now) -> dict:
    """Live readings offered for the run's temperature items (none once it is submitted)."""
    return {} if run.submission is not None else sensor_now(db.session, site, items, now)


@bp.get("/runs/<int:run_id>")
def run(run_id: int):
    return render_template("checklists/run.html", **_run_context(site_row_or_404(Run, run_id)))


def _commit_keeping_loaded() -> None:
    """Commit without expiring what this request loaded (person, run, item, site, answer).

    The tick-off renders them straight after, unchanged but for the answer it just
    wrote; reloading each one cost a quarter of the request's queries.
    """
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


@bp.post("/runs/<int:run_id>/items/<int:item_id>")
def answer(run_id: int, item_id: int):
    run = site_row_or_404(Run, run_id)
    item = db.session.get(ChecklistItem, item_id)
    if item is None or item.definition_id != run.definition_id:
        abort(404)
    form = request.form
    device_id = current_device_id()
    error = None
    try:
        photo = None
        upload = request.files.get("photo")
        if upload is not None and upload.filename:
            photo = store_photo(db.session, upload.read(), current_user, device_id,
                                current_app.config["BRIGADE_PHOTO_MAX_BYTES"])
        # Fields the form did not send keep the answer in force (a note on a ticked item).
        current = record_answer(db.session, run, item, current_user, device_id,
                                value=form.get("value", KEEP), note=form.get("note", KEEP),
                                corrective_action=form.get("corrective_action", KEEP),
                                photo=photo, from_sensor=form.get("source") == "sensor")
        _commit_keeping_loaded()
    except OperationError as exc:
        db.session.rollback()
        error, current = str(exc), latest_answer(db.session, run, item)
    return _item_reply(run, item, current, error)


def _item_reply(run: Run, item: ChecklistItem, current: Answer | None, error: str | None):
    if not _is_htmx():
        if error:
            flash(error, "error")
        return redirect(url_for("checklists.run", run_id=run.id, _anchor=f"item-{item.id}"))
    # The partial shows this one item: its answer alone, not the whole run's history.
    site, now = db.session.get(Site, run.site_id), utcnow()
    context = dict(run=run, site=site, problems={},
                   answers={item.id: current} if current else {}, now=now,
                   photo_max=current_app.config["BRIGADE_PHOTO_MAX_BYTES"],
                   sensors=_sensors(run, site, [item], now),
                   rules=rules_then(db.session, site, now))
    html = render_template("checklists/_item.html", item=item, error=error, **context)
    if not error:
        # The answer changed what a refused submission listed: its summary goes (each
        # item's own marker stays until the next submit says what is still missing).
        html += '<div id="refused" hidden hx-swap-oob="outerHTML"></div>'
    return make_response(html), 422 if error else 200


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc):
    """A photo over the limit is refused before the view reads the form: the cook is told so
    in their language, on the item, and the answer in force stays as it was."""
    error = photo_too_large(current_app.config["BRIGADE_PHOTO_MAX_BYTES"])
    args = request.view_args or {}
    if request.endpoint == "checklists.answer":
        run = site_row_or_404(Run, args["run_id"])
        item = db.session.get(ChecklistItem, args["item_id"])
        if item is None or item.definition_id != run.definition_id:
            abort(404)
        return _item_reply(run, item, latest_answer(db.session, run, item), error)
    return error, 413


@bp.post("/runs/<int:run_id>/submit")
def submit(run_id: int):
    run = site_row_or_404(Run, run_id)
    try:
        submit_run(db.session, run, current_user, current_device_id())
    except SubmissionRefused as exc:
        db.session.rollback()
        problems = {item.id: why for item, why in exc.problems}
        return render_template("checklists/run.html", refused=exc.problems,
                               **_run_context(run, problems)), 422
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("checklists.run", run_id=run.id))
    db.session.commit()
    flash(_("Checklist submitted. Thank you, %(name)s.", name=current_user.name), "ok")
    return redirect(url_for("checklists.home"))


#: Who reads every suggestion of a site (as /rules/suggestions); others their own only.
SUGGESTION_READERS = (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER)


@bp.get("/photos/<int:photo_id>")
def photo(photo_id: int):
    photo = db.session.get(Photo, photo_id)
    # A photo is the site's whose run an answer attached it to, or that came with one of its
    # rule suggestions; other sites get a 404.
    # A suggestion's photo is for its author and the site's chefs, as the suggestion is.
    site_id = current_site().id
    mine = db.session.execute(select(Answer.id).join(Run, Run.id == Answer.run_id).where(
        Answer.photo_id == photo_id, Run.site_id == site_id).limit(1)).first() \
        or db.session.execute(select(RuleSuggestion.id).where(
            RuleSuggestion.photo_id == photo_id, RuleSuggestion.site_id == site_id,
            true() if current_user.role in SUGGESTION_READERS
            else RuleSuggestion.staff_id == current_user.id).limit(1)).first()
    if photo is None or mine is None:
        abort(404)
    response = make_response(photo.data)
    response.headers["Content-Type"] = photo.content_type
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return response
