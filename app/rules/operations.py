"""The rules as a site keeps them (seed appendix): versions, store rules that prevail, the
yearly review with the year's evidence, training acknowledgements and suggestions.

A site's rules start as the defaults (checklists/rules.yaml, loaded into ``rules``) the first
time they are needed: version 1. The head chef's review decides, rule by rule, keep, amend,
retire — and may add store rules; signing it off publishes the next version whole, chained
with who, when and a summary. Amending a default rule makes a store rule under the same code,
which prevails over it (appendix 2): checklist items keep pointing at the code and every screen
shows the text in force and where it comes from. The caller commits.
"""
from __future__ import annotations

import datetime as dt
import difflib
import re
from functools import lru_cache

import yaml
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.checklists.definitions import (DEFINITIONS_DIR, ITEM_KINDS, DefinitionError,
                                        current_definitions, retired_codes, sync_site)
from app.errors import OperationError
from app.models import (Alert, Answer, ChecklistItem, HoldTimer, Role, Rule, RuleAcknowledgement,
                        RuleReview, RuleSetVersion, RuleSuggestion, Run, Site, Staff,
                        SuggestionAnswer, TimerOutcome, Unit, utcnow)
from sensors.temperature import to_celsius

DECISIONS = ("keep", "amend", "retire")
MAX_TITLE, MAX_TEXT, MAX_ITEM = 200, 4000, 500
#: Alerts that tell of a rule kept badly: the cold-holding rule for a warm fridge.
ALERT_RULES = {"temperature": "R2"}


@lru_cache(maxsize=1)
def appendix() -> list[dict]:
    """The three clauses of the source's appendix, in English and Chinese."""
    with open(DEFINITIONS_DIR / "rules.yaml", encoding="utf-8") as fh:
        return list(yaml.safe_load(fh).get("appendix") or [])


def _default_rules(session) -> list[dict]:
    """The newest loaded version of each default rule, in order."""
    newest = select(Rule.code, func.max(Rule.version).label("version")).group_by(Rule.code) \
        .subquery()
    rows = session.execute(select(Rule).join(newest, (Rule.code == newest.c.code)
                                             & (Rule.version == newest.c.version))
                           .order_by(Rule.number, Rule.code)).scalars()
    return [{"code": r.code, "number": r.number, "title": {"en": r.title_en, "zh": r.title_zh},
             "text": {"en": r.text_en, "zh": r.text_zh}, "source": "default", "overrides": None}
            for r in rows]


def newest_version(session, site_id: int) -> RuleSetVersion | None:
    """The site's newest published version (None before the site first used its rules)."""
    return session.execute(select(RuleSetVersion).where(RuleSetVersion.site_id == site_id)
                           .order_by(RuleSetVersion.number.desc()).limit(1)).scalar()


def current_version(session, site: Site) -> RuleSetVersion:
    """The site's rules in force, starting the site from the defaults on first use."""
    version = newest_version(session, site.id)
    if version is not None:
        return version
    rules = _default_rules(session)
    if not rules:
        raise OperationError(_("No rules are loaded yet: run `flask --app app checklists load`."))
    first = RuleSetVersion(site_id=site.id, number=1, published_at=utcnow(), rules=rules,
                           changed=[], retired=[],
                           summary="The default rules of the source document (seed).")
    try:
        with session.begin_nested():
            audit.append(session, first, "rules.started", None, None)
    except IntegrityError:  # another request started the site at the same moment
        return session.execute(select(RuleSetVersion).where(
            RuleSetVersion.site_id == site.id, RuleSetVersion.number == 1)).scalar_one()
    return first


def versions(session, site: Site) -> list[RuleSetVersion]:
    return list(session.execute(select(RuleSetVersion).where(RuleSetVersion.site_id == site.id)
                                .order_by(RuleSetVersion.number.desc())).scalars())


def version_in_force(session, site: Site, at: dt.datetime) -> RuleSetVersion | None:
    """The version that applied at ``at`` (what an old checklist run was done under)."""
    return session.execute(select(RuleSetVersion).where(
        RuleSetVersion.site_id == site.id, RuleSetVersion.published_at <= at)
        .order_by(RuleSetVersion.number.desc()).limit(1)).scalar()


def rules_in_force(session, site: Site) -> dict[str, dict]:
    """The site's rules by code as they apply now (the defaults before its first version), with
    any default rule new in the file since (its items are on the checklist already); reads
    only, for pages that must not write."""
    version = newest_version(session, site.id)
    if version is None:
        return {r["code"]: r for r in _default_rules(session)}
    return {r["code"]: r for r in version.rules + new_defaults(session, site, version.rules)}


def new_defaults(session, site: Site, rules: list[dict]) -> list[dict]:
    """Default rules loaded since the site's version was published that it neither has nor
    ever retired: the next review adopts them (keep or retire)."""
    have = {r["code"] for r in rules}
    missing = [r for r in _default_rules(session) if r["code"] not in have]
    if not missing:  # the usual case (every tablet answer asks): no second query
        return []
    retired = retired_codes(session, site.id)
    return [r for r in missing if r["code"] not in retired]


def under_review(session, site: Site, base: RuleSetVersion) -> list[dict]:
    """The rules a review walks: the version's, then any new default rule."""
    return base.rules + new_defaults(session, site, base.rules)


def rules_then(session, site: Site, at: dt.datetime) -> dict[str, dict]:
    """The site's rules by code as they applied at ``at`` (a run done before the site's first
    version was recorded was done under the defaults, its version 1)."""
    version = version_in_force(session, site, at) or session.execute(
        select(RuleSetVersion).where(RuleSetVersion.site_id == site.id)
        .order_by(RuleSetVersion.number).limit(1)).scalar()
    if version is None:
        return {r["code"]: r for r in _default_rules(session)}
    # (A default rule new in the file since: its items are on the checklist already.)
    return {r["code"]: r for r in version.rules + new_defaults(session, site, version.rules)}


def alert_rule(session, alert: Alert) -> dict | None:
    """The rule an alert tells of, as the site kept it when the alert opened: cold holding for a
    warm fridge, a hold timer's own rule for one that ran out; None for the other kinds."""
    code = ALERT_RULES.get(alert.kind)
    if alert.kind == "timer_expired" and (alert.subject or "").startswith("timer:"):
        timer_id = alert.subject.partition(":")[2]
        timer = session.get(HoldTimer, int(timer_id)) if timer_id.isdigit() else None
        code = timer.rule_code if timer is not None else None
    if code is None:
        return None
    return rules_then(session, session.get(Site, alert.site_id), alert.opened_at).get(code)


def rule_in(version: RuleSetVersion | None, code: str) -> dict | None:
    for rule in (version.rules if version else []):
        if rule["code"] == code:
            return rule
    return None


def items_by_rule(session, site: Site) -> dict[str, list[ChecklistItem]]:
    """The checklist items the site works from now, by the rule each enforces."""
    out: dict[str, list[ChecklistItem]] = {}
    for definition in current_definitions(session, site.id):
        for item in definition.items:
            out.setdefault(item.rule_code, []).append(item)
    return out


def item_ref(item: ChecklistItem) -> str:
    """How a rule names an item it removes: ``checklist:item``."""
    return f"{item.definition.key}:{item.key}"


def item_texts(session) -> dict[str, dict]:
    """Every item the defaults ever had, by reference, with its text: what a version's removed
    items were."""
    from app.models import ChecklistDefinition
    out = {}
    for item, key in session.execute(select(ChecklistItem, ChecklistDefinition.key).join(
            ChecklistDefinition, ChecklistDefinition.id == ChecklistItem.definition_id)
            .where(ChecklistDefinition.site_id.is_(None)).order_by(ChecklistItem.id)):
        out[f"{key}:{item.key}"] = {"en": item.text_en, "zh": item.text_zh}
    return out


# --- differences between two versions ---------------------------------------------------------

def _tokens(text: str) -> list[str]:
    """Words and spaces for Latin text; single characters for Chinese (no spaces to split on)."""
    return re.findall(r"[\u3000-\u9fff\uff00-\uffef]|\w+|\s+|[^\w\s]", text or "")


def word_diff(before: str, after: str) -> list[tuple[str, str]]:
    """[(op, text)] with op "same", "del" or "ins"."""
    a, b = _tokens(before), _tokens(after)
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(b[j1:j2])))
    return out


def compare(old: RuleSetVersion, new: RuleSetVersion) -> list[dict]:
    """Rule by rule: added, retired, amended (with word diffs of title and text in both
    languages, and whether the source changed) or unchanged."""
    before = {r["code"]: r for r in old.rules}
    after = {r["code"]: r for r in new.rules}
    rows = []
    for code in list(after) + [c for c in before if c not in after]:
        a, b = before.get(code), after.get(code)
        if a is None:
            status = "added"
        elif b is None:
            status = "retired"
        elif (a["title"], a["text"], a["source"]) != (b["title"], b["text"], b["source"]) \
                or _items_of(a) != _items_of(b):
            status = "amended"
        else:
            status = "unchanged"
        items_a, items_b = _items_of(a), _items_of(b)
        rows.append({"code": code, "status": status, "rule": b or a,
                     "items_added": [i for i in (b or {}).get("items") or []
                                     if (i["checklist"], i["key"]) not in items_a[0]],
                     "items_dropped": [i for i in (a or {}).get("items") or []
                                       if (i["checklist"], i["key"]) not in items_b[0]]
                     if b else [],
                     "items_removed": sorted(items_b[1] - items_a[1]),
                     "diff": {
            field: {lang: word_diff((a or {}).get(field, {}).get(lang, "") if a else "",
                                    (b or {}).get(field, {}).get(lang, "") if b else "")
                    for lang in ("en", "zh")} for field in ("title", "text")}})
    return rows


def _items_of(rule: dict | None) -> tuple[set, set]:
    """A rule's own items (checklist, key) and the default items it removes."""
    rule = rule or {}
    return ({(i["checklist"], i["key"]) for i in rule.get("items") or []},
            set(rule.get("removed_items") or []))


# --- the year's evidence ----------------------------------------------------------------------

def evidence(session, site: Site, since: dt.datetime, until: dt.datetime) -> dict[str, dict]:
    """Per rule code, from Brigade's own records between ``since`` and ``until``: how its
    checklist items were answered (the answer in force of each), corrective actions, alerts tied
    to it, hold timers discarded under it, staff suggestions."""
    out: dict[str, dict] = {}

    def of(code):
        return out.setdefault(code, {"pass": 0, "fail": 0, "na": 0, "actions": 0, "alerts": 0,
                                     "discarded": 0, "timers": 0, "suggestions": 0})
    replaced = select(Answer.supersedes_id).where(Answer.supersedes_id.is_not(None))
    rows = session.execute(
        select(ChecklistItem.rule_code, Answer.outcome, Answer.corrective_action)
        .join(Answer, Answer.item_id == ChecklistItem.id).join(Run, Run.id == Answer.run_id)
        .where(Run.site_id == site.id, Run.slot_start >= since, Run.slot_start < until,
               Answer.id.not_in(replaced)))
    for code, outcome, action in rows:
        counts = of(code)
        if outcome in ("pass", "fail", "na"):
            counts[outcome] += 1
        if action:
            counts["actions"] += 1
    for kind, count in session.execute(
            select(Alert.kind, func.count()).where(Alert.site_id == site.id,
                                                   Alert.opened_at >= since,
                                                   Alert.opened_at < until)
            .group_by(Alert.kind)):
        if kind in ALERT_RULES:
            of(ALERT_RULES[kind])["alerts"] += count
    last = select(func.max(TimerOutcome.id)).group_by(TimerOutcome.timer_id)
    for code, outcome in session.execute(
            select(HoldTimer.rule_code, TimerOutcome.outcome)
            .join(TimerOutcome, TimerOutcome.timer_id == HoldTimer.id)
            .where(HoldTimer.site_id == site.id, HoldTimer.started_at >= since,
                   HoldTimer.started_at < until, TimerOutcome.id.in_(last))):
        of(code)["timers"] += 1
        if outcome == "discarded":
            of(code)["discarded"] += 1
    for code, count in session.execute(
            select(RuleSuggestion.rule_code, func.count()).where(
                RuleSuggestion.site_id == site.id, RuleSuggestion.at >= since,
                RuleSuggestion.at < until).group_by(RuleSuggestion.rule_code)):
        of(code or "new")["suggestions"] += count
    for counts in out.values():
        answered = counts["pass"] + counts["fail"]
        counts["fail_rate"] = round(100 * counts["fail"] / answered, 1) if answered else None
    return out


# --- the yearly review ------------------------------------------------------------------------

def _head_chef_of(staff: Staff, site: Site) -> None:
    """Seed appendix 1: the site's head chef supervises the rules; no one else signs them."""
    if staff.role != Role.HEAD_CHEF or staff.site_id != site.id:
        raise OperationError(_("Only this site's head chef reviews and publishes its rules."))


def open_review(session, site: Site) -> RuleReview | None:
    return session.execute(select(RuleReview).where(
        RuleReview.site_id == site.id, RuleReview.published_version_id.is_(None))
        .order_by(RuleReview.id.desc()).limit(1)).scalar()


def start_review(session, site: Site, staff: Staff) -> RuleReview:
    """The review under way, or a new one of the version in force (every rule kept)."""
    _head_chef_of(staff, site)
    review = open_review(session, site)
    if review is not None:
        return review
    base = current_version(session, site)
    review = RuleReview(site_id=site.id, base_version_id=base.id, started_by_id=staff.id,
                        started_at=utcnow(), updated_at=utcnow(),
                        decisions={r["code"]: {"decision": "keep"}
                                   for r in under_review(session, site, base)},
                        additions=[])
    session.add(review)
    session.flush()
    return review


def _bilingual(form: dict, prefix: str, limit: int, errors: dict, key: str) -> dict:
    out = {}
    for lang in ("en", "zh"):
        value = " ".join((form.get(f"{prefix}_{lang}") or "").split()) if limit == MAX_TITLE \
            else (form.get(f"{prefix}_{lang}") or "").strip()
        if not value or len(value) > limit:
            errors[key] = _("Give the title and the text in English and in Chinese.")
        out[lang] = value
    return out


def _number(raw: str | None, temp_unit: str) -> float | None:
    raw = (raw or "").strip().replace(",", ".")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(raw) from None
    if value != value or abs(value) > 1000:  # NaN, or no kitchen's temperature
        raise ValueError(raw)
    return round(to_celsius(value, temp_unit), 2)


def _item_from_form(session, site: Site, form: dict, target: str,
                    errors: dict) -> dict | None:
    """An item to add under a rule, from the fields ``item_<target>_…``: which checklist, its
    kind (those that exist), its text in both languages; for a temperature its limits in the
    site's unit (kept in °C) and optionally the unit it is about; critical or not. None when
    the fields are empty; a mistake is put in ``errors[f"item_{target}"]``."""
    field = lambda name: (form.get(f"item_{target}_{name}") or "").strip()  # noqa: E731
    text = {lang: " ".join(field(f"text_{lang}").split()) for lang in ("en", "zh")}
    if not (text["en"] or text["zh"]):
        return None
    key = f"item_{target}"
    checklists = {d.key for d in current_definitions(session, None)}
    if field("checklist") not in checklists:
        errors[key] = _("Choose the checklist the item goes on.")
        return None
    if field("kind") not in ITEM_KINDS:
        errors[key] = _("Choose what kind of answer the item takes.")
        return None
    if not text["en"] or not text["zh"] or max(map(len, text.values())) > MAX_ITEM:
        errors[key] = _("Write the item in English and in Chinese (up to %(n)s characters).",
                        n=MAX_ITEM)
        return None
    item = {"checklist": field("checklist"), "kind": field("kind"), "text": text,
            "critical": bool(form.get(f"item_{target}_critical"))}
    if item["kind"] == "temperature":
        try:
            low, high = (_number(field("min"), site.temp_unit),
                         _number(field("max"), site.temp_unit))
        except ValueError as exc:
            errors[key] = _("%(value)s is not a temperature.", value=str(exc))
            return None
        if low is None and high is None:
            errors[key] = _("A temperature item needs a lowest or a highest limit (or both).")
            return None
        if low is not None and high is not None and low >= high:
            errors[key] = _("The lowest limit must be below the highest.")
            return None
        item["min_c"], item["max_c"] = low, high
        unit = field("unit")
        if unit:
            if unit not in set(session.execute(select(Unit.name).where(
                    Unit.site_id == site.id)).scalars()):
                errors[key] = _("There is no unit %(name)s here.", name=unit)
                return None
            item["unit"] = unit
    return item


def _pending_items(session, site: Site, form: dict, target: str, before: list,
                   errors: dict) -> list:
    """A rule's items to add so far: those saved before, less one dropped, plus a new one."""
    items = list(before or [])
    drop = form.get(f"drop_item_{target}")
    if drop is not None and str(drop).isdigit() and int(drop) < len(items):
        items.pop(int(drop))
    new = _item_from_form(session, site, form, target, errors)
    if new is not None:
        items.append(new)
        _taken(form, target)
    return items


def _taken(form: dict, target: str) -> None:
    """An item saved: its fields leave ``form``, so a page shown again (for another field's
    mistake) shows it once, as pending, and sending that page again adds it no second time."""
    for name in [k for k in form if k.startswith(f"item_{target}_")]:
        del form[name]


def save_review(session, review: RuleReview, staff: Staff, form: dict) -> dict[str, str]:
    """Keep the head chef's decisions so far (a draft, continued later). ``form`` has, per rule
    code C, ``decision_C`` and for an amendment ``title_C_en``/``_zh``, ``text_C_en``/``_zh``,
    ``remove__<checklist>:<item>`` for an item of C to take off, ``item_C_…`` for an item to
    add (``drop_item_C`` takes one back); ``new_title_en``… (and ``item_new_…``) for a rule to
    add, ``item_a<n>_…`` for another item of added rule n; ``summary``. Adding or removing an
    item amends the rule. Returns mistakes by field ({} if none); what is right is saved
    either way, and the fields of each item or rule saved are taken out of ``form`` (the
    request's fields, shown again with the mistakes: what was saved shows once, as pending)."""
    site = session.get(Site, review.site_id)
    _head_chef_of(staff, site)
    base = session.get(RuleSetVersion, review.base_version_id)
    items = items_by_rule(session, site)
    decisions, errors = {}, {}
    for rule in under_review(session, site, base):
        code = rule["code"]
        before = review.decisions.get(code) or {}
        decision = form.get(f"decision_{code}", "keep")
        if decision not in DECISIONS:
            errors[f"decision_{code}"] = _("Keep, amend or retire.")
            decision = "keep"
        add = _pending_items(session, site, form, code, before.get("add_items"), errors)
        remove = sorted(item_ref(i) for i in items.get(code, [])
                        if form.get(f"remove__{item_ref(i)}"))
        if decision == "keep" and (add or remove):
            decision = "amend"
        # (Pending items and ticks are kept in the draft even while the rule is marked retired,
        # so changing one's mind loses nothing; only an amendment publishes them.)
        entry = {"decision": decision, "add_items": add, "remove_items": remove}
        if decision == "amend":  # (wording not sent: as the rule reads now)
            wording = {f"{f}_{code}_{lang}": rule[f][lang] for f in ("title", "text")
                       for lang in ("en", "zh")}
            wording.update((k, v) for k, v in form.items() if k in wording)
            entry["title"] = _bilingual(wording, f"title_{code}", MAX_TITLE, errors,
                                        f"rule_{code}")
            entry["text"] = _bilingual(wording, f"text_{code}", MAX_TEXT, errors,
                                       f"rule_{code}")
        decisions[code] = entry
    additions = []
    for n, added in enumerate(review.additions or []):
        additions.append({**added, "items": _pending_items(session, site, form, f"a{n}",
                                                           added.get("items"), errors)})
    if any((form.get(f"new_{f}_{lang}") or "").strip()
           for f in ("title", "text") for lang in ("en", "zh")):
        new_errors: dict = {}
        title = _bilingual(form, "new_title", MAX_TITLE, new_errors, "new")
        text = _bilingual(form, "new_text", MAX_TEXT, new_errors, "new")
        first = _item_from_form(session, site, form, "new", new_errors)
        if new_errors:
            errors.update(new_errors)
        else:
            additions.append({"title": title, "text": text, "items": [first] if first else []})
            for name in ("new_title_en", "new_title_zh", "new_text_en", "new_text_zh"):
                form.pop(name, None)
            _taken(form, "new")
    drop = form.get("drop_addition")
    if drop is not None and str(drop).isdigit() and int(drop) < len(additions):
        additions.pop(int(drop))
    review.decisions, review.additions = decisions, additions
    if "summary" in form:
        review.summary = (form.get("summary") or "").strip()[:2000] or None
    review.updated_at = utcnow()
    session.flush()
    return errors


def _next_store_code(rules: list[dict], additions_so_far: int, retired: set[str]) -> str:
    """S1, S2…: never a code the site's rules have (or had: a retired code is not reused)."""
    taken = {r["code"] for r in rules} | retired
    n = 1 + additions_so_far
    while f"S{n}" in taken:
        n += 1
    return f"S{n}"


def publish_review(session, review: RuleReview, staff: Staff,
                   device_id: str | None = None) -> RuleSetVersion:
    """Sign the review off: the next version, whole, chained with who, when and the summary;
    the year's clock starts again and open review reminders are resolved."""
    site = session.get(Site, review.site_id)
    _head_chef_of(staff, site)
    if review.published_version_id is not None:
        raise OperationError(_("This review was already signed off."))
    if not (review.summary or "").strip():
        raise OperationError(_("Write a short summary of the review before signing it off."))
    audit.serialize(session)
    base = session.get(RuleSetVersion, review.base_version_id)
    newest = current_version(session, site)
    if newest.id != base.id:
        raise OperationError(_("The rules changed since this review began: start it again."))
    rules, changed, retired = [], [], []
    keys = _ItemKeys(session, base.rules)
    known = {r["code"] for r in base.rules}
    for rule in under_review(session, site, base):
        decision = review.decisions.get(rule["code"], {"decision": "keep"})
        if decision["decision"] == "retire":
            retired.append(rule["code"])
            changed.append(rule["code"])
            continue
        if decision["decision"] == "amend":
            amended = dict(rule)
            if (decision["title"], decision["text"]) != (rule["title"], rule["text"]):
                overrides = rule["code"] if rule["source"] == "default" \
                    else rule.get("overrides")
                amended.update(title=decision["title"], text=decision["text"], source="store",
                               overrides=overrides)
            remove = set(decision.get("remove_items") or [])
            own = [i for i in rule.get("items") or []
                   if f"{i['checklist']}:{i['key']}" not in remove]
            own += [keys.give(rule["code"], i) for i in decision.get("add_items") or []]
            gone = remove - {f"{i['checklist']}:{i['key']}" for i in rule.get("items") or []}
            amended["items"] = own
            amended["removed_items"] = sorted(set(rule.get("removed_items") or []) | gone)
            if not amended["items"]:
                amended.pop("items")
            if not amended["removed_items"]:
                amended.pop("removed_items")
            if amended != rule:
                rule = amended
                changed.append(rule["code"])
        if rule["code"] not in known and rule["code"] not in changed:
            changed.append(rule["code"])  # a default rule new to the site: everyone reads it
        rules.append(rule)
    for n, added in enumerate(review.additions or []):
        code = _next_store_code(base.rules + rules, n, retired_codes(session, site.id))
        number = max([r["number"] for r in base.rules + rules] + [0]) + 1
        rule = {"code": code, "number": number, "title": added["title"],
                "text": added["text"], "source": "store", "overrides": None}
        if added.get("items"):
            rule["items"] = [keys.give(code, i) for i in added["items"]]
        rules.append(rule)
        changed.append(code)
    now = utcnow()
    version = RuleSetVersion(site_id=site.id, number=base.number + 1, published_at=now,
                             published_by_id=staff.id, summary=review.summary.strip(),
                             rules=rules, changed=changed, retired=retired)
    audit.append(session, version, "rules.published", staff.id, device_id)
    try:  # the checklists follow: retired rules' items leave, store rules' items join
        sync_site(session, site.id, version, actor_id=staff.id, refuse_empty=True)
    except DefinitionError:
        raise OperationError(_("This would leave a checklist with no items: keep at least one "
                               "rule or item on each checklist.")) from None
    review.published_version_id = version.id
    _resolve_reminders(session, site, staff, device_id, version, now)
    return version


class _ItemKeys:
    """Keys for the items a review adds: ``<code>-<n>``, unique on their checklist."""

    def __init__(self, session, rules: list[dict]):
        self.taken = {(d.key, i.key) for d in current_definitions(session, None) for i in d.items}
        self.taken |= {(i["checklist"], i["key"]) for r in rules for i in r.get("items") or []}

    def give(self, code: str, item: dict) -> dict:
        n = 1
        while (item["checklist"], f"{code.lower()}-{n}") in self.taken:
            n += 1
        self.taken.add((item["checklist"], f"{code.lower()}-{n}"))
        return {**item, "key": f"{code.lower()}-{n}"}


def _resolve_reminders(session, site: Site, staff: Staff, device_id, version, now) -> None:
    from app.alerts.operations import resolve_done
    from app.models import AlertState
    for subject in session.execute(select(AlertState.open_subject).where(
            AlertState.site_id == site.id,
            AlertState.open_subject.like(f"site:{site.id}:review:%"))).scalars():
        resolve_done(session, subject, staff, device_id, now,
                     rules_published=version.number)


# --- training ---------------------------------------------------------------------------------

def to_acknowledge(session, staff: Staff) -> tuple[RuleSetVersion | None, list[dict]]:
    """The rules of the site's newest published version that changed and that this person has
    not yet read (none for the defaults a site starts from)."""
    version = newest_version(session, staff.site_id)
    if version is None or version.number == 1 or not version.changed:
        return version, []
    done = set(session.execute(select(RuleAcknowledgement.rule_code).where(
        RuleAcknowledgement.staff_id == staff.id,
        RuleAcknowledgement.version_id == version.id)).scalars())
    pending = [code for code in version.changed if code not in done]
    retired = set(version.retired)
    rules = {r["code"]: r for r in version.rules}
    return version, [rules.get(code) or {"code": code, "retired": True}
                     for code in pending if code in rules or code in retired]


def acknowledge(session, staff: Staff, version: RuleSetVersion, code: str,
                device_id: str | None = None) -> RuleAcknowledgement | None:
    """One tap: this person read this changed rule of this version. Again: nothing new."""
    if version.site_id != staff.site_id or code not in version.changed:
        raise OperationError(_("That rule has nothing new to read."))
    existing = session.execute(select(RuleAcknowledgement).where(
        RuleAcknowledgement.staff_id == staff.id, RuleAcknowledgement.version_id == version.id,
        RuleAcknowledgement.rule_code == code)).scalar()
    if existing is not None:
        return None
    ack = RuleAcknowledgement(staff_id=staff.id, version_id=version.id, rule_code=code,
                              locale=staff.locale, at=utcnow(), device_id=device_id)
    audit.append(session, ack, "rules.acknowledged", staff.id, device_id)
    return ack


def training_status(session, site: Site, version: RuleSetVersion) -> list[dict]:
    """Every active person of the site: how many of the version's changed rules they have read."""
    if version.number == 1 or not version.changed:
        return []
    read = dict(session.execute(select(RuleAcknowledgement.staff_id, func.count()).where(
        RuleAcknowledgement.version_id == version.id).group_by(RuleAcknowledgement.staff_id)).all())
    people = session.execute(select(Staff).where(Staff.site_id == site.id,
                                                 Staff.active.is_(True)).order_by(Staff.name))
    return [{"person": p, "read": read.get(p.id, 0), "of": len(version.changed)}
            for p in people.scalars()]


# --- feedback ---------------------------------------------------------------------------------

def suggest(session, staff: Staff, site: Site, rule_code: str | None, text: str,
            device_id: str | None = None, photo=None) -> RuleSuggestion:
    """Anyone at the site suggests a change to a rule (or a new rule), with a photo if they
    took one (stored by ``store_photo``)."""
    text = (text or "").strip()
    if not text or len(text) > MAX_TEXT:
        raise OperationError(_("Write the suggestion (up to %(n)s characters).", n=MAX_TEXT))
    version = current_version(session, site)
    if rule_code and rule_in(version, rule_code) is None:
        raise OperationError(_("There is no rule %(code)s.", code=rule_code))
    suggestion = RuleSuggestion(site_id=site.id, staff_id=staff.id, rule_code=rule_code or None,
                                text=text, at=utcnow(), device_id=device_id,
                                photo_id=photo.id if photo is not None else None)
    audit.append(session, suggestion, "rules.suggested", staff.id, device_id)
    return suggestion


def answer_suggestion(session, staff: Staff, suggestion: RuleSuggestion, text: str,
                      device_id: str | None = None) -> SuggestionAnswer:
    _head_chef_of(staff, session.get(Site, suggestion.site_id))
    text = (text or "").strip()
    if not text or len(text) > MAX_TEXT:
        raise OperationError(_("Write the answer (up to %(n)s characters).", n=MAX_TEXT))
    if session.execute(select(SuggestionAnswer.id).where(
            SuggestionAnswer.suggestion_id == suggestion.id)).scalar() is not None:
        raise OperationError(_("This suggestion was already answered."))
    answer = SuggestionAnswer(suggestion_id=suggestion.id, staff_id=staff.id, text=text,
                              at=utcnow())
    audit.append(session, answer, "rules.suggestion_answered", staff.id, device_id)
    return answer


def suggestions(session, site: Site, limit: int = 200) -> list[tuple[RuleSuggestion,
                                                                      SuggestionAnswer | None]]:
    rows = session.execute(select(RuleSuggestion, SuggestionAnswer).outerjoin(
        SuggestionAnswer, SuggestionAnswer.suggestion_id == RuleSuggestion.id)
        .where(RuleSuggestion.site_id == site.id).order_by(RuleSuggestion.id.desc())
        .limit(limit)).all()
    return [(s, a) for s, a in rows]
