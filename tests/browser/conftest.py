"""Playwright drives Debian's Chromium (it cannot download its own browser here)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's sync API runs an event loop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# axe-core from npm (package.json at the top, installed by `make test`), injected into pages.
AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium (make test installs it)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # The test injects axe-core as a script; the pages' Content-Security-Policy must not stop it.
    return {**browser_context_args, "bypass_csp": True}


@pytest.fixture
def accessibility_violations(page):
    """The serious and critical axe-core violations of the page as shown now: [(rule, target)]."""
    if not AXE.exists():
        pytest.fail("axe-core is missing: npm ci (make test runs it)")

    def check() -> list[tuple[str, str]]:
        page.add_script_tag(path=str(AXE))
        found = page.evaluate(
            """() => axe.run().then(result => result.violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .flatMap(v => v.nodes.map(node => [v.id, node.target.join(' ')])))"""
        )
        return [tuple(item) for item in found]

    return check


@pytest.fixture
def screenshot(page):
    ARTIFACTS.mkdir(exist_ok=True)

    def take(name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def log_in(page, live_server):
    def as_user(username: str, password: str):
        page.goto(f"{live_server.url}/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")

    return as_user


@pytest.fixture
def stop_polling(page):
    """Stop the page's polling and wait for its requests in flight: a request the live server is
    still answering when the test's database is flushed fails the next test's setup."""
    in_flight = set()
    page.on("request", lambda request: in_flight.add(request))
    page.on("requestfinished", lambda request: in_flight.discard(request))
    page.on("requestfailed", lambda request: in_flight.discard(request))

    def stop() -> None:
        page.evaluate("""() => {
            Object.defineProperty(document, 'hidden', {value: true, configurable: true});
            document.dispatchEvent(new Event('visibilitychange'));
        }""")
        page.wait_for_function("() => !window.UploadOpsCharts.isPolling()")
        for _ in range(100):
            if not in_flight:
                return
            page.wait_for_timeout(50)
        pytest.fail(f"requests still in flight: {[request.url for request in in_flight]}")

    return stop


@pytest.fixture(autouse=True)
def no_content_security_policy_violations(request):
    """Every browser test fails if the page's Content-Security-Policy blocked anything: a script,
    a style or a request the page needs (the policy allows no inline script)."""
    if "page" not in request.fixturenames:
        yield
        return
    page = request.getfixturevalue("page")
    blocked = []
    page.on(
        "console",
        lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield
    assert not blocked, blocked
