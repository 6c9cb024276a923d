"""Load checklist and rule definitions from ``checklists/*.yaml`` into the database.

Loading is idempotent: an unchanged file is a no-op, a changed one becomes a new
version. Runs keep the version they were opened with.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml
from sqlalchemy import func, select

from app import audit
from app.checklists.schedules import ScheduleError, validate
from app.models import ChecklistDefinition, ChecklistItem, Rule

logger = logging.getLogger(__name__)

ITEM_KINDS = ("passfail", "temperature", "time", "text")
DEFINITIONS_DIR = Path(__file__).resolve().parents[2] / "checklists"
#: Files in the folder that are not checklists (timer presets are read by app.timers).
NOT_CHECKLISTS = {"rules.yaml", "timers.yaml"}


class DefinitionError(ValueError):
    """A checklist or rules file is malformed; the message names the file and the place."""


@dataclass(frozen=True)
class LoadResult:
    kind: str       # "rule" or "checklist"
    key: str
    version: int
    status: str     # "new", "updated", "unchanged", or "made for site N" (its own version)


def _bilingual(value, where: str) -> dict:
    if not isinstance(value, dict) or not str(value.get("en", "")).strip() \
            or not str(value.get("zh", "")).strip():
        raise DefinitionError(f"{where}: needs both 'en' and 'zh' text")
    return {"en": str(value["en"]).strip(), "zh": str(value["zh"]).strip()}


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def parse_rules(data, where: str) -> list[dict]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise DefinitionError(f"{where}: expected a top-level 'rules' list")
    rules, codes = [], set()
    for i, raw in enumerate(data["rules"], 1):
        at = f"{where} rule #{i}"
        if not isinstance(raw, dict) or not raw.get("code"):
            raise DefinitionError(f"{at}: needs a code")
        if raw["code"] in codes:
            raise DefinitionError(f"{at}: duplicate code {raw['code']!r}")
        codes.add(raw["code"])
        number = raw.get("number")
        if not isinstance(number, int) or isinstance(number, bool):
            raise DefinitionError(f"{at}: number must be a whole number")
        rules.append({"code": str(raw["code"]), "number": number,
                      "source": raw.get("source", "default"),
                      "title": _bilingual(raw.get("title"), f"{at} title"),
                      "text": _bilingual(raw.get("text"), f"{at} text")})
    return rules


def _limit(value, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DefinitionError(f"{where}: {name} must be a number of °C")
    return float(value)


def parse_checklist(data, where: str, rule_codes: set[str]) -> dict:
    if not isinstance(data, dict) or not data.get("key"):
        raise DefinitionError(f"{where}: needs a key")
    items_raw = data.get("items")
    if not isinstance(items_raw, list) or not items_raw:
        raise DefinitionError(f"{where}: needs a non-empty items list")
    try:
        schedules = [validate(s, where) for s in data.get("schedules") or []]
    except ScheduleError as exc:
        raise DefinitionError(str(exc)) from None
    items, keys = [], set()
    for i, raw in enumerate(items_raw, 1):
        at = f"{where} item #{i}"
        if not isinstance(raw, dict) or not raw.get("key"):
            raise DefinitionError(f"{at}: needs a key")
        at = f"{where} item {raw['key']!r}"
        if raw["key"] in keys:
            raise DefinitionError(f"{at}: duplicate key")
        keys.add(raw["key"])
        if raw.get("kind") not in ITEM_KINDS:
            raise DefinitionError(f"{at}: kind must be one of {', '.join(ITEM_KINDS)}")
        if raw.get("rule") not in rule_codes:
            raise DefinitionError(f"{at}: rule {raw.get('rule')!r} is not a known rule code")
        limit = raw.get("limit") or {}
        item = {"key": str(raw["key"]), "kind": raw["kind"], "rule": raw["rule"],
                "critical": bool(raw.get("critical", False)),
                "required": bool(raw.get("required", True)),
                "text": _bilingual(raw.get("text"), f"{at} text"),
                "min_c": _limit(limit.get("min_c"), "limit.min_c", at),
                "max_c": _limit(limit.get("max_c"), "limit.max_c", at),
                "actions": [_bilingual(a, f"{at} action") for a in raw.get("actions") or []]}
        if raw.get("unit") is not None:
            if item["kind"] != "temperature" or not str(raw["unit"]).strip():
                raise DefinitionError(f"{at}: only a temperature item names a unit (its name)")
            item["unit"] = str(raw["unit"]).strip()[:120]
        if item["kind"] == "temperature" and item["min_c"] is None and item["max_c"] is None:
            raise DefinitionError(f"{at}: a temperature item needs limit.max_c and/or limit.min_c")
        items.append(item)
    return {"key": str(data["key"]), "title": _bilingual(data.get("title"), f"{where} title"),
            "schedules": schedules, "items": items}


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{path.name}: not valid YAML: {exc}") from None


def load_all(session, directory: Path = DEFINITIONS_DIR) -> list[LoadResult]:
    """Parse every file first (all or nothing), then record what changed; the caller commits."""
    directory = Path(directory)
    rules_path = directory / "rules.yaml"
    if not rules_path.exists():
        raise DefinitionError(f"{directory}: no rules.yaml")
    rules = parse_rules(_read_yaml(rules_path), rules_path.name)
    codes = {r["code"] for r in rules}
    checklists = [parse_checklist(_read_yaml(p), p.name, codes)
                  for p in sorted(directory.glob("*.yaml")) if p.name not in NOT_CHECKLISTS]
    seen = set()
    for c in checklists:
        if c["key"] in seen:
            raise DefinitionError(f"checklist key {c['key']!r} is defined twice")
        seen.add(c["key"])
    results = [_store_rule(session, r) for r in rules] + \
        [_store_checklist(session, c) for c in checklists]
    session.flush()
    # Sites that keep checklists of their own get them from a new default (and, once after an
    # upgrade, from what their rules already retired); a no-op when nothing differs.
    results += [LoadResult("checklist", d.key, d.version, f"made for site {d.site_id}")
                for d in sync_sites(session)]
    return results


def _store_rule(session, rule: dict) -> LoadResult:
    digest = _digest(rule)
    latest = session.execute(select(Rule).where(Rule.code == rule["code"])
                             .order_by(Rule.version.desc()).limit(1)).scalar_one_or_none()
    if latest is not None and latest.content_hash == digest:
        return LoadResult("rule", rule["code"], latest.version, "unchanged")
    version = 1 if latest is None else latest.version + 1
    session.add(Rule(code=rule["code"], version=version, number=rule["number"],
                     source=rule["source"], title_en=rule["title"]["en"],
                     title_zh=rule["title"]["zh"], text_en=rule["text"]["en"],
                     text_zh=rule["text"]["zh"], content_hash=digest))
    return LoadResult("rule", rule["code"], version, "new" if latest is None else "updated")


def _store_checklist(session, checklist: dict) -> LoadResult:
    digest = _digest(checklist)
    latest = latest_definition(session, checklist["key"])
    if latest is not None and latest.content_hash == digest:
        return LoadResult("checklist", checklist["key"], latest.version, "unchanged")
    audit.serialize(session)  # version numbers are per checklist: one writer at a time
    version = _next_version(session, checklist["key"])
    definition = _add_definition(session, checklist, version, digest)
    # What past answers answered is chained: verify rebuilds each version from its rows.
    audit.record_change(session, subject=f"checklist_definitions:{definition.id}",
                        action="checklist.loaded", actor_id=None,
                        data={"key": [None, definition.key], "version": [None, version],
                              "content_hash": [None, definition_digest(definition)],
                              "site_id": [None, None]},
                        reason=f"a changed checklist file (version {version})"
                        if latest is not None else None)
    logger.info("checklist %s version %s loaded", checklist["key"], version)
    return LoadResult("checklist", checklist["key"], version, "new" if latest is None else "updated")


def _next_version(session, key: str) -> int:
    """Versions are numbered per checklist across the defaults and every site's own."""
    return (session.execute(select(func.max(ChecklistDefinition.version))
                            .where(ChecklistDefinition.key == key)).scalar() or 0) + 1


def _add_definition(session, checklist: dict, version: int, digest: str,
                    **ownership) -> ChecklistDefinition:
    definition = ChecklistDefinition(key=checklist["key"], version=version,
                                     title_en=checklist["title"]["en"],
                                     title_zh=checklist["title"]["zh"],
                                     schedules=checklist["schedules"], content_hash=digest,
                                     **ownership)
    for position, item in enumerate(checklist["items"]):
        definition.items.append(ChecklistItem(
            key=item["key"], position=position, kind=item["kind"], text_en=item["text"]["en"],
            text_zh=item["text"]["zh"], rule_code=item["rule"], critical=item["critical"],
            required=item["required"], temp_min_c=item["min_c"], temp_max_c=item["max_c"],
            suggested_actions=item["actions"], unit_name=item.get("unit")))
    session.add(definition)
    session.flush()
    return definition


def definition_content(definition: ChecklistDefinition) -> dict:
    """A definition version as its rows read now, in the shape ``parse_checklist`` gives."""
    return {"key": definition.key,
            "title": {"en": definition.title_en, "zh": definition.title_zh},
            "schedules": definition.schedules,
            "items": [_item_content(i) for i in sorted(definition.items, key=lambda i: i.position)]}


def _item_content(i: ChecklistItem) -> dict:
    content = {"key": i.key, "kind": i.kind, "rule": i.rule_code, "critical": i.critical,
               "required": i.required, "text": {"en": i.text_en, "zh": i.text_zh},
               "min_c": i.temp_min_c, "max_c": i.temp_max_c, "actions": i.suggested_actions}
    if i.unit_name is not None:  # (only where named: earlier versions' digests stay as loaded)
        content["unit"] = i.unit_name
    return content


def definition_digest(definition: ChecklistDefinition) -> str:
    """The sha256 its file loaded with: any edit of its items' text or limits changes it."""
    return _digest(definition_content(definition))


def latest_definition(session, key: str, site_id: int | None = None) -> ChecklistDefinition | None:
    """The checklist's version in force: the newest default (``site_id`` None), or the newest
    of the defaults and the site's own versions."""
    return session.execute(select(ChecklistDefinition).where(
        ChecklistDefinition.key == key, _for_site(site_id))
        .order_by(ChecklistDefinition.id.desc()).limit(1)).scalar_one_or_none()


def _for_site(site_id: int | None):
    if site_id is None:
        return ChecklistDefinition.site_id.is_(None)
    return ChecklistDefinition.site_id.is_(None) | (ChecklistDefinition.site_id == site_id)


def current_definitions(session, site_id: int | None = None) -> list[ChecklistDefinition]:
    """The version in force of every checklist a site uses (the defaults for ``None``); a
    checklist whose site version has no items (its rules all retired there) is not used."""
    newest = (select(func.max(ChecklistDefinition.id)).where(_for_site(site_id))
              .group_by(ChecklistDefinition.key).scalar_subquery())
    return list(session.execute(select(ChecklistDefinition)
                                .where(ChecklistDefinition.id.in_(newest),
                                       ChecklistDefinition.items.any())
                                .order_by(ChecklistDefinition.key)).scalars())


def definitions_by_key(session, site_id: int) -> dict[str, list[ChecklistDefinition]]:
    """Every version that was ever in force at a site, by checklist, oldest first."""
    by_key: dict[str, list[ChecklistDefinition]] = {}
    for definition in session.execute(select(ChecklistDefinition).where(_for_site(site_id))
                                      .order_by(ChecklistDefinition.id)).scalars():
        by_key.setdefault(definition.key, []).append(definition)
    return by_key


# --- a site's own versions: what its rules retire or add (issue #14) ---------------------------

def site_content(default: ChecklistDefinition, rules: list[dict], retired: set[str]) -> dict:
    """The checklist as a site's rules make it: the default's items but those of the rules the
    site retired and those a rule took off, then the items the site's rules add to it. (An item
    of a default rule the site has not seen yet, new in the file, stays.)"""
    removed = {ref for r in rules for ref in r.get("removed_items") or []}
    content = definition_content(default)
    items = [i for i in content["items"]
             if i["rule"] not in retired and f"{default.key}:{i['key']}" not in removed]
    for rule in rules:
        for added in rule.get("items") or []:
            if added["checklist"] == default.key:
                items.append(_store_item_content(added, rule["code"]))
    return {**content, "items": items}


def _store_item_content(added: dict, code: str) -> dict:
    """An item a store rule adds, in the shape a definition's items have."""
    content = {"key": added["key"], "kind": added["kind"], "rule": code,
               "critical": bool(added.get("critical")), "required": True,
               "text": added["text"], "min_c": added.get("min_c"), "max_c": added.get("max_c"),
               "actions": []}
    if added.get("unit"):
        content["unit"] = added["unit"]
    return content


def retired_codes(session, site_id: int) -> set[str]:
    """Every rule code the site ever retired."""
    from app.models import RuleSetVersion
    return {code for retired in session.execute(select(RuleSetVersion.retired).where(
        RuleSetVersion.site_id == site_id)).scalars() for code in retired or []}


def sync_site(session, site_id: int, rules_version, actor_id: int | None = None,
              refuse_empty: bool = False) -> list[ChecklistDefinition]:
    """Bring the site's checklists in line with its rules version (``RuleSetVersion``): a new
    version of the site's own for every checklist whose items differ from the one in force;
    chained with the site, the default and the rules version it follows. A site whose rules
    change no item keeps working from the defaults. A checklist left with no items is not used
    at the site (``current_definitions`` leaves it out), or with ``refuse_empty`` is refused
    (DefinitionError) unless it was empty there already. The caller commits."""
    retired = retired_codes(session, site_id)
    made = []
    for default in current_definitions(session, None):
        content = site_content(default, rules_version.rules, retired)
        in_force = latest_definition(session, default.key, site_id)
        if not content["items"] and in_force.items and refuse_empty:
            raise DefinitionError(f"checklist {default.key!r} would have no items left")
        digest = _digest(content)
        if in_force.content_hash == digest and (in_force.id == default.id
                                                or in_force.base_id == default.id):
            continue
        audit.serialize(session)  # version numbers are per checklist: one writer at a time
        version = _next_version(session, default.key)
        definition = _add_definition(session, content, version, digest, site_id=site_id,
                                     base_id=default.id, rules_version_id=rules_version.id)
        audit.record_change(session, subject=f"checklist_definitions:{definition.id}",
                            action="checklist.derived", actor_id=actor_id, site_id=site_id,
                            data={"key": [None, definition.key], "version": [None, version],
                                  "content_hash": [None, definition_digest(definition)],
                                  "site_id": [None, site_id], "base_id": [None, default.id],
                                  "rules_version_id": [None, rules_version.id]},
                            reason=f"the site's rules version {rules_version.number} "
                                   f"(from checklist version {default.version})")
        logger.info("checklist %s version %s made for site %s (%s items)", default.key,
                    version, site_id, len(content["items"]))
        made.append(definition)
    return made


def sync_sites(session) -> list[ChecklistDefinition]:
    """After the defaults changed: every site that keeps rules of its own follows them."""
    from app.models import RuleSetVersion
    newest = select(func.max(RuleSetVersion.id)).group_by(RuleSetVersion.site_id).scalar_subquery()
    made = []
    for version in session.execute(select(RuleSetVersion).where(RuleSetVersion.id.in_(newest))
                                   .order_by(RuleSetVersion.site_id)).scalars():
        made += sync_site(session, version.site_id, version)
    return made
