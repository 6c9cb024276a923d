"""The channel for signed-in screens (the tablet's alert banner, any page that updates itself)."""
from __future__ import annotations

from flask import current_app, jsonify, request

from app.live import bp
from app.live.changes import conditional_headers, etag, site_version
from app.models import db
from app.web import current_site


@bp.get("")
def version():
    """The change counter of the site the person works on: 304 while the screen's ETag holds
    (most of these are answered before Flask: app.live.fastpath).

    live.js sends ``X-Brigade-Poll`` so that asking does not keep a tablet awake.
    """
    tag = etag(site_version(db.session, current_site().id))
    if request.if_none_match.contains(tag):
        response = current_app.response_class(status=304)
    else:
        response = jsonify(version=tag)
    return conditional_headers(response, tag)


@bp.app_template_global()
def live_etag() -> str:
    """The ETag of the signed-in person's site now, for a page to start watching from."""
    return etag(site_version(db.session, current_site().id))
