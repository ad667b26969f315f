"""What the browser tests share: a deployment whose users have passwords, real Chromium driven by
Playwright, and the checks every page gets (axe-core: no serious or critical violation; no dialog,
no page error, no Content-Security-Policy violation).

Chromium is Debian's (`/usr/bin/chromium`), never a downloaded one; the tests skip, saying why, when
it or Playwright is missing. Each test module starts one deployment and one browser.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from custos.local.cluster import Cluster, GatewaySetup, UserSetup

CHROMIUM = os.environ.get("CUSTOS_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
AXE_SHA256 = "880970c081707360e64f34cea25ff91892f5bc95675b0776925b9709dd8a68bb"
# Screenshots of the main pages are written here (for docs/portal.md) when CUSTOS_SCREENSHOTS=1, so
# that an ordinary test run leaves the working tree as it was.
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "portal"


def require_browser() -> Any:
    """The Playwright sync API, or a skip that says what is missing."""
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("Playwright is not installed: pip install -e '.[dev]'")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium")
    return sync_api


def axe_source() -> str:
    data = AXE.read_bytes()
    if hashlib.sha256(data).hexdigest() != AXE_SHA256:
        raise AssertionError(f"{AXE} is not the axe-core recorded in {AXE.parent / 'VERSIONS.md'}")
    return data.decode("utf-8")


@dataclass
class PageWatch:
    """What a page did that it must not: dialogs opened, errors thrown, CSP violations reported."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert self.dialogs == [], f"a dialog opened: {self.dialogs}"
        assert self.errors == [], f"the page threw: {self.errors}"
        csp = [m for m in self.console if "Content Security Policy" in m]
        assert csp == [], f"Content-Security-Policy violations: {csp}"


class Portal:
    """A browser on the deployment's portal: one context (cookie jar) per signed-in user."""

    def __init__(self, browser: Any, cluster: Cluster) -> None:
        self.browser = browser
        self.cluster = cluster
        self._axe = axe_source()

    @contextmanager
    def session(self, user: str | None) -> Iterator[tuple[Any, PageWatch]]:
        """A page signed in as `user` (None: signed out), watched for dialogs, errors and CSP reports."""
        context = self.browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
        page = context.new_page()
        watch = PageWatch()

        def on_dialog(dialog: Any) -> None:
            watch.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: watch.errors.append(str(exc)))
        page.on("console", lambda msg: watch.console.append(msg.text))
        try:
            if user is not None:
                self.sign_in(page, user)
            yield page, watch
        finally:
            context.close()

    def url(self, path: str) -> str:
        return self.cluster.url + path

    def sign_in(self, page: Any, user: str, password: str = PASSWORD) -> None:
        page.goto(self.url("/signin"))
        page.get_by_label("Name").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(self.url("/"))

    def visit(self, page: Any, path: str) -> Any:
        response = page.goto(self.url(path))
        self.check_accessibility(page)
        return response

    def check_accessibility(self, page: Any) -> None:
        """axe-core, evaluated through the DevTools protocol (which the page's CSP does not govern, so
        the policy stays as strict for the test as for a user): no serious or critical violation."""
        cdp = page.context.new_cdp_session(page)
        try:
            cdp.send("Runtime.evaluate", {"expression": self._axe})
        finally:
            cdp.detach()
        violations = page.evaluate(
            """async () => (await axe.run(document)).violations
                 .filter(v => v.impact === 'serious' || v.impact === 'critical')
                 .map(v => `${v.id} (${v.impact}): ${v.help} at `
                         + v.nodes.map(n => n.target.join(' ')).join(', '))"""
        )
        assert violations == [], f"{page.url}: {violations}"

    def screenshot(self, page: Any, name: str) -> None:
        if os.environ.get("CUSTOS_SCREENSHOTS") != "1":
            return
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@contextmanager
def running_portal(
    work: Path, *, gateways: Sequence[GatewaySetup], users: Sequence[UserSetup]
) -> Iterator[Portal]:
    """A deployment whose users all have the password PASSWORD, and Chromium on its portal."""
    sync_api = require_browser()
    cluster = Cluster(work, gateways=gateways, users=users)
    try:
        cluster.start()
    except Exception:
        print(cluster.logs())
        raise
    try:
        for user in users:
            with cluster.client(user.name) as client:
                client.set_password(PASSWORD)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                yield Portal(browser, cluster)
            finally:
                browser.close()
    finally:
        cluster.stop()
