"""A person's view of /docs: headless Chromium drives Swagger UI against a real gunicorn.

The page, its script and its styles must all come from the app itself: the test records
every request the browser context makes and fails on any that leaves the loopback.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.request
from contextlib import closing
from urllib.parse import urlsplit

import pytest
from _helpers import run_gunicorn
from browser import CHROMIUM, CHROMIUM_FLAGS, LOOPBACK, requires_chromium
from playwright import sync_api

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


STORE_TOKEN = "browser-admin-token"


def _store_env(tmp_path) -> dict[str, str]:
    return {
        "STORE_DB": str(tmp_path / "store.sqlite3"),
        "STORE_UPLOADS": str(tmp_path / "uploads"),
        "STORE_ADMIN_TOKEN": STORE_TOKEN,
    }


def _authorize(page, token: str) -> None:
    """Press Authorize, paste the bearer token, and close the dialog, as a person would."""
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    section = dialog.locator(".auth-container", has_text="HTTPBearer")
    section.locator("input").fill(token)
    dialog.locator(".auth-btn-wrapper button.authorize").first.click()
    sync_api.expect(section).to_contain_text("Authorized")
    dialog.locator("button.btn-done").first.click()


def _execute(operation) -> None:
    operation.locator("button.execute").click()


def test_swagger_ui_authorizes_with_a_bearer_token_and_calls_a_protected_route(tmp_path):
    requested: list[tuple[str, str | None]] = []
    with (
        run_gunicorn("examples.store:app", tmp_path=tmp_path, env=_store_env(tmp_path)) as srv,
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on(
                "request",
                lambda request: requested.append(
                    (request.url, request.headers.get("authorization"))
                ),
            )
            page.goto(f"{srv.url}/docs")

            operation = page.locator("#operations-default-list_images_admin_images_get")
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            # Before Authorize: the protected route answers 401.
            _execute(operation)
            status = operation.locator(".live-responses-table .response .response-col_status")
            sync_api.expect(status).to_have_text("401")

            _authorize(page, STORE_TOKEN)
            _execute(operation)
            sync_api.expect(status).to_have_text("200")
        finally:
            browser.close()

    calls = [auth for url, auth in requested if url == f"{srv.url}/admin/images"]
    assert calls == [None, f"Bearer {STORE_TOKEN}"]


def test_swagger_ui_uploads_a_file_through_its_file_picker(tmp_path):
    image = tmp_path / "tea.png"
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
    image.write_bytes(data)
    with (
        run_gunicorn("examples.store:app", tmp_path=tmp_path, env=_store_env(tmp_path)) as srv,
        sync_api.sync_playwright() as playwright,
    ):
        request = urllib.request.Request(
            f"{srv.url}/products",
            data=json.dumps({"name": "Tea", "price": "4.50"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {STORE_TOKEN}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            product_id = json.load(response)["id"]
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{srv.url}/docs")
            _authorize(page, STORE_TOKEN)

            operation = page.locator(
                "#operations-default-upload_image_products__product_id__image_put"
            )
            operation.locator(".opblock-summary").click()
            operation.locator("button.try-out__btn").click()
            operation.locator("tr[data-param-name='product_id'] input").fill(str(product_id))
            operation.locator("input[type=file]").set_input_files(str(image))
            _execute(operation)

            status = operation.locator(".live-responses-table .response .response-col_status")
            sync_api.expect(status).to_have_text("201")
            sync_api.expect(operation.locator(".live-responses-table")).to_contain_text(
                hashlib.sha256(data).hexdigest()
            )
            # The operation from its title to the live response (docs/images/docs-upload.png).
            top = operation.bounding_box()
            live = operation.locator(".live-responses-table").bounding_box()
            assert top is not None
            assert live is not None
            height = live["y"] + live["height"] - top["y"]
            clip = {"x": top["x"], "y": top["y"], "width": top["width"], "height": height}
            page.screenshot(path=str(tmp_path / "upload.png"), full_page=True, clip=clip)
        finally:
            browser.close()

    assert (tmp_path / "upload.png").stat().st_size > 10_000
    saved = list((tmp_path / "uploads").iterdir())
    assert [path.read_bytes() for path in saved] == [data]
    with closing(sqlite3.connect(tmp_path / "store.sqlite3")) as conn:
        assert conn.execute("SELECT product_id, size, kind FROM images").fetchall() == [
            (product_id, len(data), "png")
        ]
