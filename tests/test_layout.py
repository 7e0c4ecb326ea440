"""The floor plan holds: imports point down (import-linter's contracts in .importlinter), the code
passes ruff, and no module reaches into another module's private names."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("core", "monitoring", "partners", "fleet", "alerting", "dashboard", "upload_gate", "fleet_sim")


def tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    return str(found) if found.exists() else shutil.which(name) or name


def test_imports_point_down_the_layers():
    result = subprocess.run(
        [tool("lint-imports"), "--config", str(ROOT / ".importlinter")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_the_code_passes_ruff():
    result = subprocess.run([tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]


def private_imports(path: Path) -> list[str]:
    """`from project.module import _name` lines in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in APP_PACKAGES:
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{alias.name}"
                for alias in node.names
                if alias.name.startswith("_") and not alias.name.startswith("__")
            ]
    return found


def test_no_module_imports_another_modules_private_names():
    sources = [path for package in APP_PACKAGES for path in (ROOT / package).rglob("*.py")]
    sources += list((ROOT / "bench").glob("*.py"))
    offenders = [line for path in sources for line in private_imports(path)]
    assert offenders == []
