"""A person's view of /docs: headless Chromium drives Swagger UI against a real gunicorn.

The page, its script and its styles must all come from the app itself: the test records
every request the browser context makes and fails on any that leaves the loopback.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from urllib.parse import urlsplit

import pytest
from browser import CHROMIUM, CHROMIUM_FLAGS, LOOPBACK, requires_chromium
from playwright import sync_api
from server import run_gunicorn

pytestmark = [
    pytest.mark.server,
    pytest.mark.timeout(120),
    requires_chromium,
]


def test_swagger_ui_sends_a_signup_and_shows_the_201(tmp_path):
    db = tmp_path / "signup.sqlite3"
    requested: list[str] = []
    with (
        run_gunicorn("examples.signup:app", tmp_path=tmp_path, env={"SIGNUP_DB": str(db)}) as srv,
        sync_api.sync_playwright() as playwright,
    ):
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            context.on("request", lambda request: requested.append(request.url))
            page = context.new_page()
            page.goto(f"{srv.url}/docs")

            operation = page.locator("#operations-default-signup_signup_post")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            body = operation.locator("textarea.body-param__text")
            body.fill('{"name": "Grace", "email": "grace@example.com"}')
            operation.locator("button.execute").click()

            status = operation.locator(".live-responses-table .response .response-col_status")
            sync_api.expect(status).to_have_text("201")
            sync_api.expect(operation.locator(".live-responses-table")).to_contain_text(
                "Check your email!"
            )
            page.screenshot(path=str(tmp_path / "docs-page.png"), full_page=True)
        finally:
            context.close()

    assert (tmp_path / "docs-page.png").stat().st_size > 10_000
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT name, email FROM users").fetchall() == [
            ("Grace", "grace@example.com")
        ]
    assert f"{srv.url}/docs/swagger-ui-bundle.js" in requested
    assert f"{srv.url}/openapi.json" in requested
    assert f"{srv.url}/signup" in requested
    outside = [
        url
        for url in requested
        if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in LOOPBACK
    ]
    assert outside == [], f"the docs page made requests off the machine: {outside}"
