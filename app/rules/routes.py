"""Views: the rules in force (everyone), versions and their differences, the head chef's yearly
review and answers to suggestions, the tablet's acknowledgements and suggestions."""
from __future__ import annotations

import datetime as dt

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from app.checklists.definitions import ITEM_KINDS, current_definitions
from app.checklists.operations import photo_too_large, store_photo
from app.devices import current_device_id
from app.errors import OperationError
from app.models import Role, RuleSetVersion, RuleSuggestion, Staff, Unit, db, utcnow
from app.rules import bp
from app.rules.operations import (DECISIONS, acknowledge, answer_suggestion, appendix, compare,
                                  current_version, evidence, item_ref, item_texts,
                                  items_by_rule, open_review, under_review,
                                  publish_review, save_review, start_review, suggest,
                                  suggestions, to_acknowledge, training_status, versions)
from app.rules_review import review_due
from app.security import chef_only
from app.web import current_site

KIND_LABELS = {"passfail": lazy_gettext("Pass / fail"),
               "temperature": lazy_gettext("Temperature"), "time": lazy_gettext("Time"),
               "text": lazy_gettext("Text")}
DECISION_LABELS = {"keep": lazy_gettext("Keep"), "amend": lazy_gettext("Amend"),
                   "retire": lazy_gettext("Retire")}


def _lang() -> str:
    return "zh" if (current_user.locale or "").startswith("zh") else "en"


@bp.app_context_processor
def _rules_helpers():
    def rules_to_read():
        """The changed rules the signed-in person has still to read (for the tablet's home)."""
        if not current_user.is_authenticated:
            return None, []
        return to_acknowledge(db.session, current_user)
    return {"rules_to_read": rules_to_read}


@bp.context_processor
def _helpers():
    return {"lang": _lang(), "other": "en" if _lang() == "zh" else "zh",
            "decision_labels": DECISION_LABELS}


def _version_or_404(number: int) -> RuleSetVersion:
    version = db.session.execute(select(RuleSetVersion).where(
        RuleSetVersion.site_id == current_site().id, RuleSetVersion.number == number)).scalar() \
        if 0 < number < 2**31 else None
    if version is None:
        abort(404)
    return version


@bp.get("")
def index():
    site = current_site()
    version = current_version(db.session, site)
    db.session.commit()  # a site's first look starts it from the defaults (version 1)
    chef = current_user.role in (Role.HEAD_CHEF, Role.ADMIN, Role.OWNER)
    due, _last = review_due(db.session, site)
    publisher = db.session.get(Staff, version.published_by_id) if version.published_by_id else None
    return render_template("rules/index.html", site=site, version=version, publisher=publisher,
                           items=items_by_rule(db.session, site), appendix=appendix(), due=due,
                           removed_texts=item_texts(db.session),
                           training=training_status(db.session, site, version) if chef else [],
                           chef=chef, review=open_review(db.session, site))


@bp.get("/versions")
def history():
    site = current_site()
    current_version(db.session, site)
    db.session.commit()
    rows = versions(db.session, site)
    people = {p.id: p for p in db.session.execute(select(Staff).where(
        Staff.id.in_([v.published_by_id for v in rows if v.published_by_id]))).scalars()}
    return render_template("rules/versions.html", site=site, versions=rows, people=people)


@bp.get("/versions/<int:number>")
def version(number: int):
    version = _version_or_404(number)
    return render_template("rules/version.html", site=current_site(), version=version,
                           appendix=appendix(), removed_texts=item_texts(db.session))


@bp.get("/diff")
def diff():
    new_n = request.args.get("to", type=int) or 0
    new = _version_or_404(new_n)
    old = _version_or_404(request.args.get("from", type=int) or max(new_n - 1, 0))
    return render_template("rules/diff.html", site=current_site(), old=old, new=new,
                           rows=compare(old, new), removed_texts=item_texts(db.session),
                           checklist_titles={d.key: d.title(_lang()) for d in
                                             current_definitions(db.session, None)})


# --- the yearly review ------------------------------------------------------------------------

def _review_page(review, errors: dict, form: dict | None = None, status: int = 200):
    site = current_site()
    base = db.session.get(RuleSetVersion, review.base_version_id)
    until = utcnow()
    since = until - dt.timedelta(days=365)
    open_suggestions = [(s, a) for s, a in suggestions(db.session, site) if s.at >= since]
    return render_template("rules/review.html", site=site, review=review, base=base,
                           rules=under_review(db.session, site, base),
                           evidence=evidence(db.session, site, since, until),
                           items=items_by_rule(db.session, site), errors=errors, form=form or {},
                           suggestions=open_suggestions, decisions=DECISIONS,
                           checklists=current_definitions(db.session, None), kinds=ITEM_KINDS,
                           kind_labels=KIND_LABELS, item_ref=item_ref,
                           units=db.session.execute(select(Unit.name).where(
                               Unit.site_id == site.id).order_by(Unit.name)).scalars().all()
                           ), status


@bp.route("/review", methods=["GET", "POST"])
@chef_only
def review():
    site = current_site()
    try:
        review = start_review(db.session, site, current_user)
    except OperationError as exc:
        abort(403, description=str(exc))
    if request.method == "GET":
        db.session.commit()
        return _review_page(review, {})
    form = request.form.to_dict()
    errors = save_review(db.session, review, current_user, form)
    db.session.commit()
    if errors:
        return _review_page(review, errors, form, status=400)
    if form.get("action") == "publish":
        try:
            version = publish_review(db.session, review, current_user, current_device_id())
            db.session.commit()
        except OperationError as exc:
            db.session.rollback()
            return _review_page(review, {"publish": str(exc)}, form, status=400)
        flash(_("Version %(n)s of the rules is published; everyone reads what changed on the "
                "tablet.", n=version.number), "ok")
        return redirect(url_for("rules.diff", to=version.number))
    flash(_("Review saved: continue it any time."), "ok")
    return redirect(url_for("rules.review"))


# --- training and feedback --------------------------------------------------------------------

@bp.post("/read/<int:version_id>/<code>")
def read(version_id: int, code: str):
    version = db.session.get(RuleSetVersion, version_id) if 0 < version_id < 2**31 else None
    if version is None or version.site_id != current_user.site_id:
        abort(404)
    try:
        acknowledge(db.session, current_user, version, code, current_device_id())
        db.session.commit()
    except OperationError as exc:
        db.session.rollback()
        abort(400, description=str(exc))
    if request.headers.get("HX-Request"):
        return render_template("rules/_to_read.html")
    return redirect(request.referrer or url_for("checklists.home"))


@bp.route("/suggest", methods=["GET", "POST"])
def suggest_view():
    site = current_site()
    version = current_version(db.session, site)
    db.session.commit()
    error = None
    if request.method == "POST":
        try:
            photo, upload = None, request.files.get("photo")
            if upload is not None and upload.filename:
                photo = store_photo(db.session, upload.read(), current_user, current_device_id(),
                                    current_app.config["BRIGADE_PHOTO_MAX_BYTES"])
            suggest(db.session, current_user, site, request.form.get("rule") or None,
                    request.form.get("text"), current_device_id(), photo)
            db.session.commit()
            flash(_("Thank you: the head chef will read your suggestion."), "ok")
            return redirect(url_for("rules.index"))
        except OperationError as exc:
            db.session.rollback()
            error = str(exc)
    return render_template("rules/suggest.html", site=site, version=version, error=error,
                           chosen=request.values.get("rule", ""),
                           text=request.form.get("text", "")), 400 if error else 200


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    """A suggestion's photo over the limit: said on the form, in the person's language."""
    if request.endpoint != "rules.suggest_view":
        return _("That is too large."), 413
    site = current_site()
    error = photo_too_large(current_app.config["BRIGADE_PHOTO_MAX_BYTES"])
    return render_template("rules/suggest.html", site=site, version=current_version(db.session, site),
                           error=error, chosen="", text=""), 413


@bp.get("/suggestions")
@chef_only
def suggestions_view():
    site = current_site()
    rows = suggestions(db.session, site)
    people = {p.id: p for p in db.session.execute(select(Staff).where(Staff.id.in_(
        {s.staff_id for s, _a in rows} | {a.staff_id for _s, a in rows if a}))).scalars()}
    return render_template("rules/suggestions.html", site=site, rows=rows, people=people,
                           can_answer=current_user.role == Role.HEAD_CHEF)


@bp.post("/suggestions/<int:suggestion_id>/answer")
@chef_only
def answer(suggestion_id: int):
    suggestion = db.session.get(RuleSuggestion, suggestion_id) if 0 < suggestion_id < 2**31 \
        else None
    if suggestion is None or suggestion.site_id != current_site().id:
        abort(404)
    try:
        answer_suggestion(db.session, current_user, suggestion, request.form.get("text"),
                          current_device_id())
        db.session.commit()
        flash(_("Answered."), "ok")
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("rules.suggestions_view"))
