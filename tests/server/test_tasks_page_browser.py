"""The tasks page in headless Chromium against a real gunicorn on 127.0.0.1.

A person signs in with HTTP Basic, sees a failed task's error, and presses Forget on a
finished task; the page loads nothing but its own HTML and stylesheet, and the browser is
stopped from reaching any host but the server (every such attempt is recorded and fails).
"""

from __future__ import annotations

import base64
import json
import textwrap
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _helpers import run_gunicorn
from browser import CHROMIUM, CHROMIUM_FLAGS, LOOPBACK, requires_chromium

pytestmark = [
    pytest.mark.server,
    pytest.mark.timeout(90),
    requires_chromium,
]

APP = """
    import secrets

    from funapi_sync import App, HTTPException
    from funapi_sync.security import HTTPBasic
    from funapi_sync.tasks_page import tasks_router

    app = App(title="tasks page in a browser")
    basic = HTTPBasic(realm="tasks")


    def admin(req):
        username, password = basic(req)
        if not secrets.compare_digest(password.encode(), b"s3cret") or username != "admin":
            raise HTTPException(401, headers={"WWW-Authenticate": basic.challenge})


    def ship(order):
        return order


    def charge(order):
        raise ValueError(f"card declined for order {order} <b>bold?</b>")


    @app.post("/orders/<int:order>")
    def place(input, *, background):
        background.add_task(ship, input.path["order"])
        background.add_task(charge, input.path["order"])
        return {}, 202


    @app.post("/drain")
    def drain():
        return {"drained": app.background.drain(timeout=10)}


    app.include_router(tasks_router(depends=[admin]), prefix="/_tasks")
"""


def _post(url: str) -> dict:
    request = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _tasks_json(url: str) -> list[dict]:
    token = base64.b64encode(b"admin:s3cret").decode()
    request = urllib.request.Request(
        f"{url}/_tasks", headers={"Authorization": f"Basic {token}", "Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["tasks"]


def test_the_page_shows_a_failed_tasks_error_and_forget_removes_a_finished_task(
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    (tmp_path / "tasks_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    requested: list[str] = []
    blocked: list[str] = []
    with (
        run_gunicorn("tasks_app:app", tmp_path=tmp_path, cwd=tmp_path) as server,
        sync_playwright() as playwright,
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/_tasks", timeout=10)
        assert refused.value.code == 401
        assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="tasks"'
        _post(f"{server.url}/orders/7")
        assert _post(f"{server.url}/drain") == {"drained": True}
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            context = browser.new_context(
                http_credentials={"username": "admin", "password": "s3cret"}
            )

            def only_loopback(route) -> None:
                url = route.request.url
                requested.append(url)
                if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
                    route.continue_()
                else:
                    blocked.append(url)
                    route.abort()

            context.route("**/*", only_loopback)
            page = context.new_page()
            page.goto(f"{server.url}/_tasks")

            failed = page.locator("tr.task[data-status=FAILED]")
            expect(failed).to_have_count(1)
            expect(failed.locator("td.error")).to_have_text(
                "ValueError: card declined for order 7 <b>bold?</b>"
            )
            expect(failed.locator("td.error b")).to_have_count(0)  # text, not markup
            # The stylesheet applied: the error is shown in the page's red.
            color = failed.locator("td.error pre").evaluate("e => getComputedStyle(e).color")
            assert color == "rgb(185, 28, 28)"

            done = page.locator("tr.task[data-status=SUCCESSFUL]")
            expect(done).to_have_count(1)
            done.locator("button.forget").click()
            expect(page.locator("tr.task[data-status=SUCCESSFUL]")).to_have_count(0)
            expect(page.locator("tr.task[data-status=FAILED]")).to_have_count(1)
            assert urlsplit(page.url).path == "/_tasks"
            context.close()
        finally:
            browser.close()
        remaining = _tasks_json(server.url)

    assert [task["status"] for task in remaining] == ["FAILED"]
    assert f"{server.url}/_tasks/tasks.css" in requested
    assert blocked == [], f"the tasks page tried to leave the machine: {blocked}"
