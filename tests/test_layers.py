"""The layers in .importlinter hold: sensors apart from the web app, views apart, operations below views."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(config: Path) -> subprocess.CompletedProcess:
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(lint), str(config), "--no-cache"], cwd=config.parent,
                          capture_output=True, text=True, timeout=300)


def test_the_code_keeps_its_layers():
    result = _lint(ROOT / ".importlinter")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_broken_layer_is_caught(tmp_path):
    # The same contracts over a copy with one forbidden import added: lint-imports must fail.
    package = tmp_path / "sensors"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "leak.py").write_text("import app.models\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "models.py").write_text("")
    # The real file's header and its sensors contract, over the copy.
    import configparser
    real = configparser.ConfigParser()
    real.read(ROOT / ".importlinter")
    kept = configparser.ConfigParser()
    for section in ("importlinter", "importlinter:contract:sensors-apart"):
        kept[section] = dict(real[section])
    config = tmp_path / ".importlinter"
    with config.open("w") as out:
        kept.write(out)
    result = _lint(config)
    assert result.returncode != 0
    assert "sensors.leak -> app.models" in result.stdout
