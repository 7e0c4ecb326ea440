"""The Node client (clients/node: client, presignGate middleware, example upload-service) against
a real sidecar, through `node --test`; and its TypeScript declarations through tsc."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.clients.conftest import REPO, binary_or_skip, run

NODE_PACKAGE = REPO / "clients" / "node"


@pytest.fixture
def node() -> str:
    return binary_or_skip("node", "nodejs")


def passed_and_failed(tap: str) -> tuple[int, int]:
    """node --test's summary lines: (# pass N, # fail N)."""
    counts = dict(re.findall(r"^# (pass|fail) (\d+)$", tap, re.MULTILINE))
    return int(counts.get("pass", 0)), int(counts.get("fail", 0))


def node_test(node: str, env: dict[str, str], *files: str) -> str:
    command = [node, "--test", "--test-reporter=tap", *files]
    # Run as a top-level test run even when pytest itself was started by node --test.
    env = {name: value for name, value in env.items() if name != "NODE_TEST_CONTEXT"}
    return run(command, env, timeout=180).stdout


def test_node_client_and_middleware_decide_through_the_running_sidecar(node, sidecar):
    tap = node_test(node, sidecar.environment("running"), "clients/node/test/")
    assert "ok" in tap and "the third upload beyond concurrency 2 is a 429" in tap
    passed, failed = passed_and_failed(tap)
    assert failed == 0 and passed >= 19, tap[-3000:]  # the running suite ran, not only the unit tests


def test_node_client_fails_open_by_default_and_closed_when_configured_once_the_sidecar_stops(node, sidecar):
    sidecar.stop()
    tap = node_test(node, sidecar.environment("stopped"), "clients/node/test/sidecar.test.js")
    assert "fails open by default" in tap and "fail-closed client answers 503" in tap
    passed, failed = passed_and_failed(tap)
    assert (passed, failed) == (3, 0), tap[-3000:]


def test_node_package_has_no_runtime_dependencies():
    import json

    package = json.loads((NODE_PACKAGE / "package.json").read_text())
    assert package["type"] == "module"
    assert "dependencies" not in package
    for module in ("index.js", "pacer.js"):
        source = (NODE_PACKAGE / module).read_text()
        imports = re.findall(r"^import .* from '([^']+)';$", source, re.MULTILINE)
        assert all(name.startswith("node:") for name in imports), module
        assert module in package["files"]
    assert package["exports"]["./pacer"]["types"] == "./pacer.d.ts"


def test_node_type_declarations_compile_against_their_usage(node):
    tsc = NODE_PACKAGE / "node_modules" / ".bin" / "tsc"
    if not Path(tsc).exists():
        pytest.skip("typescript is not installed: run `npm ci` in clients/node (.ci/run does)")
    run([node, str(tsc), "--noEmit", "-p", str(NODE_PACKAGE)], env={})
