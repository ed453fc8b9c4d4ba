"""The HTMX todo example, driven in headless Chromium against a real gunicorn on 127.0.0.1.

Proves the page updates in place (a marker set on ``window`` survives adding, toggling and
deleting), that htmx got partial responses, that the audit rows the background task writes
after each response exist, and that the browser asked nothing of any host but the server.
Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright: never downloaded.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _helpers import ROOT, run_gunicorn
from browser import CHROMIUM, CHROMIUM_FLAGS, requires_chromium

pytestmark = [
    pytest.mark.server,
    pytest.mark.timeout(90),
    requires_chromium,
]


def audit_rows(db: Path, count: int, timeout: float = 10.0) -> list[tuple[str, str]]:
    """Poll (bounded) until the audit table has ``count`` rows; the tasks run after responses."""
    deadline = time.monotonic() + timeout
    rows: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(db, timeout=10) as conn:
            rows = conn.execute("SELECT action, title FROM audit ORDER BY id").fetchall()
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    raise AssertionError(f"{count} audit rows expected within {timeout} s, found {rows}")


def test_add_toggle_delete_without_reload(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    db = tmp_path / "todo.sqlite3"
    env = {"TODO_DB": str(db)}
    with (
        run_gunicorn("examples.todo_htmx.app:app", tmp_path=tmp_path, env=env) as server,
        sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
        )
        try:
            requests: list[tuple[str, str, dict[str, str]]] = []
            context.on("request", lambda r: requests.append((r.method, r.url, r.headers)))
            page = context.new_page()
            navigations: list[str] = []
            page.on(
                "framenavigated",
                lambda frame: navigations.append(frame.url) if frame == page.main_frame else None,
            )

            page.goto(server.url + "/")
            page.wait_for_function("() => window.htmx !== undefined")
            page.evaluate("() => { window.__marker = 'same page' }")

            title = "Buy <milk> & eggs"
            page.fill("input[name=title]", title)
            page.click("#new-todo button[type=submit]")
            item = page.locator("#todos li")
            expect(item).to_have_count(1)
            expect(item.locator("span")).to_have_text(title)  # escaped, shown as typed
            expect(page.locator("input[name=title]")).to_have_value("")

            item.locator("input[type=checkbox]").click()
            expect(item).to_have_class("done")

            item.locator("button.delete").click()
            expect(page.locator("#todos li")).to_have_count(0)

            assert page.evaluate("() => window.__marker") == "same page"
            assert navigations == [server.url + "/"]

            shot = tmp_path / "todo.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.read_bytes().startswith(b"\x89PNG")

            page.reload()
            expect(page.locator("#todos li")).to_have_count(0)
        finally:
            context.close()

    calls = [(method, urlsplit(url).path) for method, url, _ in requests]
    assert calls[:2] == [("GET", "/"), ("GET", "/static/htmx.min.js")]
    assert ("POST", "/todos") in calls
    assert ("POST", "/todos/1/toggle") in calls
    assert ("DELETE", "/todos/1") in calls
    htmx_calls = [urlsplit(url).path for _, url, headers in requests if headers.get("hx-request")]
    assert htmx_calls == ["/todos", "/todos/1/toggle", "/todos/1"]
    outside = [url for _, url, _ in requests if urlsplit(url).hostname != "127.0.0.1"]
    assert outside == []

    assert audit_rows(db, 3) == [("create", title), ("toggle", title), ("delete", title)]


def test_example_serves_htmx_itself(tmp_path: Path) -> None:
    # NOTE: no browser here: the partial/full split and the vendored file, over HTTP.
    import http.client

    with run_gunicorn(
        "examples.todo_htmx.app:app", tmp_path=tmp_path, env={"TODO_DB": str(tmp_path / "t.db")}
    ) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            connection.request("GET", "/static/htmx.min.js")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            vendored = ROOT / "examples" / "todo_htmx" / "static" / "htmx.min.js"
            assert body == vendored.read_bytes()
            connection.request("GET", "/", headers={"HX-Request": "true"})
            partial = connection.getresponse().read()
            connection.request("GET", "/")
            full = connection.getresponse().read()
        finally:
            connection.close()
    assert partial.startswith(b'<ul id="todos">')
    assert full.startswith(b"<!doctype html>")
    assert b'<ul id="todos">' in full
