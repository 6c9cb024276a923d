"""Views: people (head chef for their cooks, admin for everyone), sites, one's own password."""
from __future__ import annotations

import json

from flask import abort, flash, make_response, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user
from sqlalchemy import select

from app.devices import current_device_id
from app.errors import OperationError
from app.models import PASSWORD_ROLES, PIN_LENGTHS, AuditRecord, Change, Role, Site, Staff, db
from app.people import bp
from app.people.operations import (LANGUAGES, ROLE_LABELS, FormInvalid, add_person, add_site,
                                   can_manage, can_see, change_own_password, deactivate,
                                   reactivate, reset_password, reset_pin, roles_managed_by,
                                   sites_managed_by, update_person, update_site)
from app.security import roles_required
from app.web import current_site

managers = roles_required(Role.HEAD_CHEF, Role.ADMIN, Role.OWNER, password=True)
group_only = roles_required(Role.ADMIN, Role.OWNER, password=True)
RECENT = 50

#: What each kind of chained record says on a person's page.
ACTIONS = {
    "run.opened": lazy_gettext("Opened a checklist"),
    "answer.recorded": lazy_gettext("Answered a checklist item"),
    "answer.corrected": lazy_gettext("Corrected a submitted answer"),
    "photo.stored": lazy_gettext("Added a photo"),
    "run.submitted": lazy_gettext("Submitted a checklist"),
    "run.verified": lazy_gettext("Verified a checklist"),
    "timer.started": lazy_gettext("Started a hold timer"),
    "timer.outcome": lazy_gettext("Recorded a hold timer's outcome"),
    "timer.corrected": lazy_gettext("Corrected a hold timer's outcome"),
    "calibration.recorded": lazy_gettext("Recorded a thermometer check"),
    "alert.acknowledged": lazy_gettext("Acknowledged an alert"),
    "alert.resolved": lazy_gettext("Resolved an alert"),
    "staff.added": lazy_gettext("Added a person"),
    "staff.updated": lazy_gettext("Changed a person's details"),
    "staff.pin_reset": lazy_gettext("Reset a PIN"),
    "staff.password_reset": lazy_gettext("Reset a password"),
    "staff.password_changed": lazy_gettext("Changed their password"),
    "staff.deactivated": lazy_gettext("Deactivated a person"),
    "staff.reactivated": lazy_gettext("Reactivated a person"),
    "site.added": lazy_gettext("Added a site"),
    "site.updated": lazy_gettext("Changed a site"),
}


@bp.context_processor
def _helpers():
    return dict(role_labels=ROLE_LABELS, languages=LANGUAGES, can_manage=can_manage,
                pin_lengths=PIN_LENGTHS, password_roles=PASSWORD_ROLES)


def _person_or_404(person_id: int, manage: bool = False) -> Staff:
    person = db.session.get(Staff, person_id) if 0 < person_id < 2**31 else None
    if person is None or not can_see(current_user, person):
        abort(404)
    if manage and not can_manage(current_user, person):
        abort(403)
    return person


def _site_or_404(site_id: int) -> Site:
    site = db.session.get(Site, site_id) if 0 < site_id < 2**31 else None
    if site is None or site not in sites_managed_by(db.session, current_user):
        abort(404)
    return site


def _shown_once(template: str, **context):
    """A page with a secret on it: never cached, never stored by the browser."""
    response = make_response(render_template(template, **context))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/people")
@managers
def index():
    site = current_site()
    people = db.session.execute(select(Staff).where(Staff.site_id == site.id)
                                .order_by(Staff.active.desc(), Staff.name)).scalars().all()
    return render_template("people/index.html", site=site, people=people,
                           can_add=bool(roles_managed_by(current_user)))


def _form(values: dict, errors: dict, person: Staff | None = None, status: int = 200):
    sites = sites_managed_by(db.session, current_user)
    return render_template("people/form.html", values=values, errors=errors, person=person,
                           sites=sites, roles=roles_managed_by(current_user)), status


def _chosen_site(raw: str | None) -> Site:
    sites = {str(s.id): s for s in sites_managed_by(db.session, current_user)}
    if raw not in sites:
        raise FormInvalid({"site": _("Choose one of your sites.")})
    return sites[raw]


@bp.route("/people/new", methods=["GET", "POST"])
@managers
def new():
    site = current_site()
    if request.method == "GET":
        return _form({"site": str(site.id), "language": site.language, "role": Role.COOK.value},
                     {})
    values = request.form.to_dict()
    try:
        person, pin, password = add_person(
            db.session, current_user, site=_chosen_site(values.get("site")),
            name=values.get("name"), role=values.get("role"), language=values.get("language"),
            email=values.get("email"), device_id=current_device_id())
        db.session.commit()
    except FormInvalid as exc:
        db.session.rollback()
        return _form(values, exc.errors, status=400)
    except OperationError as exc:
        db.session.rollback()
        return _form(values, {"role": str(exc)}, status=403)
    return _shown_once("people/secret.html", person=person, pin=pin, password=password,
                       added=True)


@bp.get("/people/<int:person_id>")
@managers
def person(person_id: int):
    person = _person_or_404(person_id)
    links = db.session.execute(select(AuditRecord).where(AuditRecord.actor_id == person.id)
                               .order_by(AuditRecord.seq.desc()).limit(RECENT)).scalars().all()
    changes = db.session.execute(select(Change).where(Change.subject == f"staff:{person.id}")
                                 .order_by(Change.id.desc()).limit(RECENT)).scalars().all()
    return render_template("people/person.html", person=person, site=person.site,
                           records=[_record_row(link) for link in links],
                           changes=[_change_row(c) for c in changes], actions=ACTIONS)


def _record_row(link: AuditRecord) -> dict:
    """A chained record as a line on a person's page, with the page that shows it."""
    payload = json.loads(link.payload)
    href = None
    if link.entity == "runs":
        href = url_for("records.run", run_id=link.entity_id)
    elif payload.get("run_id"):
        href = url_for("records.run", run_id=payload["run_id"])
    elif payload.get("alert_id"):
        href = url_for("alerts.page", alert_id=payload["alert_id"])
    elif link.entity == "calibrations":
        href = url_for("calibration.index")
    elif link.entity == "changes" and payload.get("subject", "").startswith("staff:"):
        href = url_for("people.person", person_id=int(payload["subject"].split(":")[1]))
    return {"at": link.at, "action": ACTIONS.get(link.action, link.action), "href": href,
            "seq": link.seq}


def _change_row(change: Change) -> dict:
    fields = json.loads(change.data)
    by = db.session.get(Staff, change.actor_id) if change.actor_id else None
    return {"at": change.at, "action": ACTIONS.get(change.action, change.action),
            "by": by.name if by else _("setup"), "fields": sorted(fields)}


@bp.route("/people/<int:person_id>/edit", methods=["GET", "POST"])
@managers
def edit(person_id: int):
    person = _person_or_404(person_id, manage=True)
    if request.method == "GET":
        return _form({"name": person.name, "role": person.role.value, "language": person.locale,
                      "email": person.email or "", "site": str(person.site_id)}, {}, person)
    values = request.form.to_dict()
    try:
        changed = update_person(db.session, current_user, person, name=values.get("name"),
                                role=values.get("role"), language=values.get("language"),
                                email=values.get("email"),
                                site=_chosen_site(values.get("site")),
                                device_id=current_device_id())
        db.session.commit()
    except FormInvalid as exc:
        db.session.rollback()
        return _form(values, exc.errors, person, status=400)
    except OperationError as exc:
        db.session.rollback()
        return _form(values, {"role": str(exc)}, person, status=400)
    flash(_("Saved.") if changed else _("Nothing changed."), "ok")
    return redirect(url_for("people.person", person_id=person.id))


@bp.post("/people/<int:person_id>/pin")
@managers
def new_pin(person_id: int):
    person = _person_or_404(person_id, manage=True)
    pin = reset_pin(db.session, current_user, person, current_device_id())
    db.session.commit()
    return _shown_once("people/secret.html", person=person, pin=pin, password=None)


@bp.post("/people/<int:person_id>/password")
@managers
def new_password(person_id: int):
    person = _person_or_404(person_id, manage=True)
    try:
        password = reset_password(db.session, current_user, person, current_device_id())
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("people.person", person_id=person.id))
    db.session.commit()
    return _shown_once("people/secret.html", person=person, pin=None, password=password)


def _switch_active(person_id: int, operation, done: str):
    person = _person_or_404(person_id, manage=True)
    try:
        operation(db.session, current_user, person, current_device_id())
        db.session.commit()
        flash(done % {"name": person.name}, "ok")
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("people.person", person_id=person.id))


@bp.post("/people/<int:person_id>/deactivate")
@managers
def deactivate_view(person_id: int):
    return _switch_active(person_id, deactivate, _("%(name)s can no longer sign in."))


@bp.post("/people/<int:person_id>/reactivate")
@managers
def reactivate_view(person_id: int):
    return _switch_active(person_id, reactivate, _("%(name)s can sign in again."))


@bp.route("/me/password", methods=["GET", "POST"])
@managers
def my_password():
    errors = {}
    if request.method == "POST":
        try:
            if request.form.get("new") != request.form.get("again"):
                raise FormInvalid({"again": _("The two new passwords differ.")})
            change_own_password(db.session, current_user, request.form.get("current", ""),
                                request.form.get("new", ""), current_device_id())
            db.session.commit()
        except FormInvalid as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            # Every session ended with the old password, this one too: sign in with the new one.
            flash(_("Password changed: sign in with it."), "ok")
            return redirect(url_for("auth.login"))
    return render_template("people/password.html", errors=errors), 400 if errors else 200


@bp.get("/settings")
@managers
def settings():
    """Everything that changes people and settings, in one place off the tablet's bar."""
    return render_template("people/settings.html", site=current_site())


# --- sites -----------------------------------------------------------------------------------

@bp.get("/sites")
@group_only
def sites():
    return render_template("people/sites.html", sites=sites_managed_by(db.session, current_user),
                           current=current_site())


def _site_form(values: dict, errors: dict, site: Site | None = None, status: int = 200):
    from zoneinfo import available_timezones
    return render_template("people/site_form.html", values=values, errors=errors, site=site,
                           timezones=sorted(available_timezones())), status


@bp.route("/sites/new", methods=["GET", "POST"])
@group_only
def new_site():
    if request.method == "GET":
        here = current_site()
        return _site_form({"timezone": here.timezone, "language": here.language,
                           "temp_unit": here.temp_unit, "pin_length": "6"}, {})
    values = request.form.to_dict()
    try:
        site = add_site(db.session, current_user, name=values.get("name"),
                        timezone=values.get("timezone"), language=values.get("language"),
                        temp_unit=values.get("temp_unit"), pin_length=values.get("pin_length"),
                        device_id=current_device_id())
        db.session.commit()
    except FormInvalid as exc:
        db.session.rollback()
        return _site_form(values, exc.errors, status=400)
    session["site_id"] = site.id
    flash(_("%(name)s added: you are now working on it. Add its head chef and cooks.",
            name=site.name), "ok")
    return redirect(url_for("people.index"))


@bp.route("/sites/<int:site_id>/edit", methods=["GET", "POST"])
@group_only
def edit_site(site_id: int):
    site = _site_or_404(site_id)
    if request.method == "GET":
        return _site_form({"name": site.name, "timezone": site.timezone,
                           "language": site.language, "temp_unit": site.temp_unit,
                           "pin_length": str(site.pin_length)}, {}, site)
    values = request.form.to_dict()
    try:
        changed = update_site(db.session, current_user, site, name=values.get("name"),
                              timezone=values.get("timezone"), language=values.get("language"),
                              temp_unit=values.get("temp_unit"),
                              pin_length=values.get("pin_length"), device_id=current_device_id())
        db.session.commit()
    except FormInvalid as exc:
        db.session.rollback()
        return _site_form(values, exc.errors, site, status=400)
    flash(_("Saved.") if changed else _("Nothing changed."), "ok")
    return redirect(url_for("people.sites"))


@bp.post("/sites/<int:site_id>/switch")
@group_only
def switch_site(site_id: int):
    """An admin or owner works on one site at a time: every page shows the chosen one."""
    site = _site_or_404(site_id)
    session["site_id"] = site.id
    flash(_("Now working on %(name)s.", name=site.name), "ok")
    wanted = request.form.get("next") or ""
    # Only a page of this app (a path, not another host) is gone on to.
    if wanted.startswith("/") and not wanted.startswith("//") and "\\" not in wanted:
        return redirect(wanted)
    return redirect(url_for("checklists.home"))
