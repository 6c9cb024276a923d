"""Both languages are complete: every string in the code has a Chinese translation."""
import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_every_string_has_a_chinese_translation(tmp_path):
    pot = tmp_path / "messages.pot"
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F",
                    str(ROOT / "babel.cfg"), "-k", "lazy_gettext", "-o", str(pot), "."],
                   cwd=ROOT, check=True, capture_output=True)
    with pot.open("rb") as fh:
        wanted = {m.id for m in read_po(fh) if m.id}
    with (ROOT / "translations/zh/LC_MESSAGES/messages.po").open("rb") as fh:
        catalogue = read_po(fh)
    translated = {m.id: m.string for m in catalogue if m.id and m.string and not m.fuzzy}
    missing = sorted(wanted - set(translated))
    assert not missing, f"{len(missing)} strings lack a Chinese translation: {missing[:10]}"
    for msgid, msgstr in translated.items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(msgstr)), msgid


def test_checklist_yaml_is_bilingual():
    """The checklist data carries its own two languages (not gettext)."""
    import yaml
    for path in (ROOT / "checklists").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        assert data, path
        for en, zh in re.findall(r"\{en: ([^,}]+), zh: ([^}]+)\}", text):
            assert en.strip() and re.search(r"[\u4e00-\u9fff]", zh), (path.name, en)
