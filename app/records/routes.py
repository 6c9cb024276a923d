"""Head chef views over the checklist records."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import aliased, joinedload

from app.checklists.operations import current_answers, record_answer, verify_run
from app.errors import OperationError
from app.devices import current_device_id
from app.models import (Answer, AuditRecord, ChecklistItem, Run, Submission, Verification, db,
                        utcnow)
from app.records import bp
from app.security import chef_only
from app.web import current_site, site_row_or_404


@bp.get("")
@chef_only
def index():
    site = current_site()
    tz = ZoneInfo(site.timezone)
    try:
        day = dt.date.fromisoformat(request.args["day"]) if request.args.get("day") else \
            utcnow().astimezone(tz).date()
        if not dt.date(2000, 1, 1) <= day <= dt.date(2200, 1, 1):
            raise ValueError(day)
    except ValueError:
        abort(400, "day must look like 2026-11-27")
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz) \
        .astimezone(dt.timezone.utc)
    # Everything a row shows is loaded with the runs: a fixed number of queries per page.
    runs = db.session.execute(
        select(Run).where(Run.site_id == site.id, Run.slot_start >= start, Run.slot_start < end)
        .options(joinedload(Run.definition), joinedload(Run.opened_by),
                 joinedload(Run.submission), joinedload(Run.verification))
        .order_by(Run.slot_start)).scalars().all()
    waiting = (select(Run.id).join(Submission).outerjoin(Verification)
               .where(Run.site_id == site.id, Verification.id.is_(None)))
    total = db.session.scalar(select(func.count()).select_from(waiting.subquery()))
    pages = max(1, -(-total // SIGN_OFF_PAGE))
    page = min(_page(), pages)
    to_verify = db.session.execute(
        select(Run).where(Run.id.in_(waiting.scalar_subquery()))
        .options(joinedload(Run.definition),
                 joinedload(Run.submission).joinedload(Submission.submitted_by))
        .order_by(Run.slot_start, Run.id)
        .limit(SIGN_OFF_PAGE).offset((page - 1) * SIGN_OFF_PAGE)).scalars().all()
    # A fail replaced by a later answer (the same item corrected) is history, not a fail.
    replaced = aliased(Answer)
    fails = dict(db.session.execute(
        select(Answer.run_id, func.count()).where(
            Answer.run_id.in_([r.id for r in to_verify]), Answer.outcome == "fail",
            ~select(replaced.id).where(replaced.supersedes_id == Answer.id).exists())
        .group_by(Answer.run_id)).all())
    return render_template("records/index.html", site=site, day=day, runs=runs,
                           to_verify=to_verify, fails=fails, total=total, page=page, pages=pages,
                           prev_day=day - dt.timedelta(days=1),
                           next_day=day + dt.timedelta(days=1))


#: Runs waiting for sign-off shown per page, oldest first.
SIGN_OFF_PAGE = 50


def _page() -> int:
    raw = request.args.get("page", "1")
    if not raw.isdigit() or not 1 <= int(raw) <= 1_000_000:
        abort(400, "page must be a whole number from 1")
    return int(raw)


@bp.get("/runs/<int:run_id>")
@chef_only
def run(run_id: int):
    run = site_row_or_404(Run, run_id)
    links = {(a.entity, a.entity_id): a for a in db.session.execute(
        select(AuditRecord).where(AuditRecord.entity == "answers",
                                  AuditRecord.entity_id.in_([a.id for a in run.answers])))
        .scalars()}
    from app.rules.operations import rules_then
    site = current_site()
    return render_template("records/run.html", run=run, site=site,
                           answers=current_answers(run), links=links,
                           changes=history_changes(run.answers), who=_who(run, links),
                           rules=rules_then(db.session, site, run.slot_start))


def _who(run: Run, links: dict) -> dict:
    """Who did each record, by the name chained with it: renaming a person later does not
    change who did a past record (links from before names were chained show today's name)."""
    from app.audit import chained_names
    answers = {}
    for answer in run.answers:
        link = links.get(("answers", answer.id))
        name = audit_actor(link.context) if link is not None else None
        answers[answer.id] = name or answer.recorded_by.name
    opened = chained_names(db.session, "runs", [run.id]).get(run.id)
    submitted = run.submission and (
        chained_names(db.session, "submissions", [run.submission.id]).get(run.submission.id)
        or run.submission.submitted_by.name)
    verified = run.verification and (
        chained_names(db.session, "verifications", [run.verification.id]).get(run.verification.id)
        or run.verification.verified_by.name)
    return {"opened": opened or run.opened_by.name, "submitted": submitted,
            "verified": verified, "answers": answers}


def audit_actor(context: str | None) -> str | None:
    import json
    return json.loads(context).get("actor") if context else None


def history_changes(answers: list[Answer]) -> dict[int, list[str]]:
    """What each answer changed from the one before it for the same item, for people: the
    first says its answer; a later one only what it changed (the answer, a corrective action, a
    photo, a note), so three records of one fail read as what happened, not three 'Fail's."""
    from app.formatting import label
    changes: dict[int, list[str]] = {}
    before: dict[int, Answer] = {}
    for answer in answers:
        previous = before.get(answer.item_id)
        said = []
        if previous is None or (answer.outcome, answer.value) != (previous.outcome, previous.value):
            said.append(" ".join(str(x) for x in (label(answer.outcome), answer.value
                                                   if answer.value not in ("pass", "fail", "na")
                                                   else None) if x))
        if answer.corrective_action and (previous is None
                                         or answer.corrective_action != previous.corrective_action):
            said.append(_("corrective action: %(text)s", text=answer.corrective_action))
        if answer.photo_id and (previous is None or answer.photo_id != previous.photo_id):
            said.append(_("photo added"))
        if answer.note and (previous is None or answer.note != previous.note):
            said.append(_("note: %(text)s", text=answer.note))
        changes[answer.id] = said or [_("no change")]
        before[answer.item_id] = answer
    return changes


@bp.post("/runs/<int:run_id>/verify")
@chef_only
def verify(run_id: int):
    run = site_row_or_404(Run, run_id)
    try:
        verify_run(db.session, run, current_user, current_device_id(), request.form.get("note"))
        db.session.commit()
        flash(_("Verified."), "ok")
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("records.run", run_id=run.id))


@bp.post("/runs/<int:run_id>/items/<int:item_id>/correct")
@chef_only
def correct(run_id: int, item_id: int):
    run = site_row_or_404(Run, run_id)
    item = db.session.get(ChecklistItem, item_id)
    if item is None or item.definition_id != run.definition_id:
        abort(404)
    previous = current_answers(run).get(item.id)
    try:
        record_answer(db.session, run, item, current_user, current_device_id(),
                      value=request.form.get("value", ""), note=request.form.get("note"),
                      corrective_action=request.form.get("corrective_action"),
                      photo=previous.photo if previous else None,
                      reason=request.form.get("reason"))
        db.session.commit()
        flash(_("Correction recorded."), "ok")
    except OperationError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    return redirect(url_for("records.run", run_id=run.id, _anchor=f"item-{item.id}"))
