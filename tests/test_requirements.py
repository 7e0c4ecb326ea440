"""The production install is requirements.txt alone: no test tool in it, and `make run` installs
nothing more (`make test` adds requirements-dev.txt)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pinned(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(
        re.match(r"([A-Za-z0-9_.\[\]-]+)==(\S+)", line).groups() for line in lines if line and line[0] not in "#-"
    )


def test_requirements_txt_holds_no_test_tool():
    runtime = {name.lower().split("[")[0] for name in pinned(ROOT / "requirements.txt")}
    dev = {name.lower().split("[")[0] for name in pinned(ROOT / "requirements-dev.txt")}
    assert "pytest" in dev and "moto" in dev
    assert runtime.isdisjoint(dev)
    assert runtime.isdisjoint({"pytest", "pytest-django", "hypothesis", "moto", "playwright", "ruff", "flask"})


def test_make_run_installs_the_runtime_requirements_only():
    makefile = (ROOT / "Makefile").read_text()
    run_prerequisites = re.search(r"^run: (?!export )(.*)$", makefile, re.M).group(1).split()
    runtime_rule = re.search(r"^\$\(RUNTIME\): (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert run_prerequisites == ["$(RUNTIME)"]
    assert runtime_rule.group(1).split() == ["requirements.txt"]
    assert "requirements-dev.txt" not in runtime_rule.group(2)
