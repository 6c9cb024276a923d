"""Report views: the compliance report, a unit's page, chart data, exports, today at a glance."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import (Response, abort, current_app, jsonify, render_template, request, send_file,
                   stream_with_context, url_for)
from flask_babel import gettext as _

from app.models import Role, db, utcnow
from app.models.units import Unit
from app.reports import bp, charts, exports
from app.reports.operations import (PRESETS, RangeError, audit_result, compliance_report,
                                    group_overview, last_audit_result, period)
from app.security import roles_required
from app.web import current_site, site_row_or_404

#: Who reads the report: the head chef, the admin and the owner (where that role exists).
REPORT_ROLES = tuple(r for r in (Role.HEAD_CHEF, Role.ADMIN, getattr(Role, "OWNER", None)) if r)
reports_only = roles_required(*REPORT_ROLES)


def _period():
    site = current_site()
    preset = request.args.get("range", "last_7_days")
    if preset not in PRESETS:
        abort(400, "range must be one of " + ", ".join(PRESETS))
    try:
        return site, period(preset, utcnow(), site.timezone, request.args.get("first"),
                            request.args.get("last"))
    except RangeError as exc:
        abort(400, str(exc))


def _range_args(span) -> dict:
    args = {"range": span.preset}
    if request.args.getlist("unit", type=int):
        args["unit"] = request.args.getlist("unit", type=int)[:200]
    if span.preset == "custom":
        args.update(first=span.first.isoformat(), last=span.last.isoformat())
    return args


def _report_context(printing: bool = False):
    site, span = _period()
    now = utcnow()
    audit = None
    if printing:  # first: verifying streams every record through the session and lets them go
        audit = audit_result(db.session, current_app.instance_path, now) \
            if request.args.get("verify") == "1" \
            else last_audit_result(db.session, current_app.instance_path)
    unit_ids = None
    if request.args.get("unit"):  # these units' figures only (the others' are not worked out)
        unit_ids = [site_row_or_404(Unit, unit_id).id
                    for unit_id in request.args.getlist("unit", type=int)[:200] or [0]]
    report = compliance_report(db.session, site, span, now,
                               current_app.config["BRIGADE_CALIBRATION_DAYS"], unit_ids,
                               on_screen=not printing)
    context = dict(report=report, site=site, span=span, now=now, presets=PRESETS,
                   range_args=_range_args(span),
                   heatmap=charts.heatmap(report["checklists"], span),
                   rules_chart=charts.rules_bars(report["rules"]))
    if printing:  # no script runs there: each unit's chart as SVG, and the chain's check
        context["charts"] = {f.unit.id: charts.svg_chart(db.session, f, site)
                             for f in report["units"]}
        context["audit"] = audit
    return context


@bp.get("/reports")
@reports_only
def report():
    return render_template("reports/report.html", **_report_context())


@bp.get("/reports/group")
@roles_required(Role.ADMIN, Role.OWNER)
def group():
    """Every site of the group side by side over one range; each row opens its report."""
    from app.models import Site
    preset = request.args.get("range", "last_7_days")
    if preset not in PRESETS:
        abort(400, "range must be one of " + ", ".join(PRESETS))
    sites = db.session.execute(db.select(Site).order_by(Site.name, Site.id)).scalars().all()
    try:
        rows = group_overview(db.session, sites, preset, utcnow(), request.args.get("first"),
                              request.args.get("last"))
    except RangeError as exc:
        abort(400, str(exc))
    args = {k: v for k, v in request.args.items() if k in ("range", "first", "last")}
    return render_template("reports/group.html", rows=rows, presets=PRESETS, preset=preset,
                           args=args, site=current_site())


@bp.get("/reports/print")
@reports_only
def printable():
    return render_template("reports/print.html", **_report_context(printing=True))


@bp.get("/reports/verify")
@reports_only
def verify():
    now = utcnow()
    return render_template("reports/verify.html", site=current_site(), now=now,
                           audit=audit_result(db.session, current_app.instance_path, now))


@bp.get("/reports/plotly.js")
def plotly_js():
    """plotly.js from the installed plotly package: charts need no request off the machine."""
    import plotly
    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return send_file(path, mimetype="text/javascript", max_age=86400)


# --- a unit ----------------------------------------------------------------------------------

@bp.get("/units/<int:unit_id>")
@reports_only
def unit_page(unit_id: int):
    from app.reports.operations import unit_page_figures
    unit = site_row_or_404(Unit, unit_id)
    site, now = current_site(), utcnow()
    return render_template("reports/unit.html", site=site, unit=unit, now=now,
                           **unit_page_figures(db.session, unit, site, now))


@bp.get("/reports/units/<int:unit_id>/chart.json")
@reports_only
def chart_data(unit_id: int):
    unit = site_row_or_404(Unit, unit_id)
    site = current_site()
    try:
        start, end = charts.parse_window(request.args, site.timezone, utcnow())
    except ValueError as exc:
        abort(400, str(exc))
    data = charts.unit_series(db.session, unit, site, start, end, utcnow())
    data["alerts"] = [dict(m, url=url_for("alerts.page", alert_id=m["id"]))
                      for m in data["alerts"]]
    response = jsonify(data)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/reports/units/<int:unit_id>/sparkline.json")
@reports_only
def sparkline_data(unit_id: int):
    unit = site_row_or_404(Unit, unit_id)
    response = jsonify(charts.sparkline(db.session, unit, current_site(), utcnow()))
    response.headers["Cache-Control"] = "private, no-store"
    return response


# --- exports ---------------------------------------------------------------------------------

@bp.get("/reports/export/<name>.csv")
@reports_only
def export_csv(name: str):
    if name not in exports.TABLES:
        abort(404)
    site, span = _period()
    rows = exports.TABLES[name](db.session, site, span, utcnow())
    return _csv_response(rows, f"{name}-{span.first}-{span.last}.csv")


@bp.get("/reports/units/<int:unit_id>/readings.csv")
@reports_only
def readings_csv(unit_id: int):
    unit = site_row_or_404(Unit, unit_id)
    site, span = _period()
    grain = request.args.get("grain", "raw")
    if grain not in exports.GRAINS:
        abort(400, "grain must be raw, 5min or hour")
    rows = exports.readings(db.session, unit, site, span, grain)
    return _csv_response(rows, f"readings-{unit.id}-{grain}-{span.first}-{span.last}.csv")


def _csv_response(rows, filename: str) -> Response:
    response = Response(stream_with_context(exports.csv_lines(rows)),
                        mimetype="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/reports/report.pdf")
@reports_only
def pdf():
    context = _report_context(printing=True)
    html = render_template("reports/print.html", pdf=True, **context)
    span = context["span"]
    data = exports.pdf_bytes(html, request.url_root, current_app.static_folder)
    return Response(data, mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="brigade-{span.first}-{span.last}.pdf"'})


# --- today at a glance -----------------------------------------------------------------------

@bp.get("/glance")
@reports_only
def glance():
    from app.reports.operations import glance_figures
    site, now = current_site(), utcnow()
    return render_template("reports/glance.html", site=site, now=now,
                           **glance_figures(db.session, site, now))


@bp.app_template_global()
def format_day(day: dt.date) -> str:
    """A site-local date in the person's language: day before month where the site is in Europe."""
    from babel.dates import format_skeleton
    from app.formatting import site_locale
    locale = site_locale(current_site().timezone)
    return format_skeleton("yMMMEd", dt.datetime.combine(day, dt.time(12)), locale=locale)


@bp.app_template_global()
def preset_label(preset: str) -> str:
    return {"today": _("Today"), "yesterday": _("Yesterday"), "last_7_days": _("Last 7 days"),
            "this_month": _("This month"), "last_month": _("Last month"),
            "custom": _("Custom (from – to)")}.get(preset, preset)


@bp.app_template_global()
def unit_state_label(state: str) -> str:
    return {"ok": _("OK"), "warning": _("Out of range, within the delay"), "alarm": _("Alarm"),
            "critical": _("Critical"), "offline": _("Offline"), "defrost": _("Defrost")
            }.get(state, state)


@bp.app_template_global()
def tier_label(tier: str) -> str:
    return {"high": _("above the limit"), "low": _("below the lower limit"),
            "critical": _("critical")}.get(tier, tier)


bp.add_app_template_global(exports.timer_label, "timer_status")
bp.add_app_template_global(exports.status_label, "slot_status")


@bp.app_template_global()
def percent(value) -> str:
    """A fraction as a percentage with one decimal, or a dash."""
    return "—" if value is None else f"{value * 100:.1f} %"


@bp.app_template_global()
def duration(delta) -> str:
    """A duration as 1 h 05 min / 12 min / 40 s."""
    if delta is None:
        return "—"
    seconds = int(delta.total_seconds() if isinstance(delta, dt.timedelta) else delta)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return _("%(h)s h %(m)02d min", h=hours, m=minutes)
    if minutes:
        return _("%(m)s min", m=minutes)
    return _("%(s)s s", s=secs)
