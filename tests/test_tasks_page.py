"""The tasks page in process: guards, the list and its filter, escaping, forget, retry, 404."""

from __future__ import annotations

import base64
import logging

import pytest

from funapi_sync import App
from funapi_sync.backends import InlineBackend
from funapi_sync.security import HTTPBasic
from funapi_sync.status import FAILED, READY
from funapi_sync.tasks_page import tasks_router

AUTH = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
SAME_ORIGIN = {**AUTH, "Origin": "http://localhost"}


def charge(order):
    raise ValueError(f"card declined for <script>alert({order})</script>")


def ship(order):
    return order


@pytest.fixture(autouse=True)
def _quiet_task_failures():
    # The failing tasks below are logged at WARNING, as in production; nothing to see.
    logger = logging.getLogger("funapi_sync.background")
    logger.disabled = True
    yield
    logger.disabled = False


def make_app(backend="inline", **router_options):
    app = App(background_backend=backend)

    @app.post("/orders/<int:order>")
    def order(input, *, background):
        ship_id = background.add_task(ship, input.path["order"]).id
        charge_id = background.add_task(charge, input.path["order"]).id
        return {"ship": ship_id, "charge": charge_id}, 202

    router = tasks_router(depends={"admin": HTTPBasic()}, **router_options)
    app.include_router(router, prefix="/_tasks")
    return app


def test_every_route_answers_401_with_the_basic_challenge_without_credentials():
    app = make_app()
    client = app.test_client()
    ids = client.post("/orders/1").json

    for method, path in [
        ("GET", "/_tasks"),
        ("GET", "/_tasks/tasks.css"),
        ("GET", f"/_tasks/{ids['charge']}"),
        ("POST", f"/_tasks/{ids['ship']}/forget"),
        ("POST", f"/_tasks/{ids['charge']}/retry"),
    ]:
        response = client.open(path, method=method, headers={"Origin": "http://localhost"})
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Basic"
    assert app.background.status(ids["ship"]) is not None  # the refused forget did nothing


def test_a_guard_that_checks_the_password_refuses_a_wrong_one():
    app = App(background_backend="inline")
    basic = HTTPBasic()

    def check(req):
        from funapi_sync import HTTPException

        if basic(req) != ("admin", "secret"):
            raise HTTPException(401, headers={"WWW-Authenticate": "Basic"})

    app.include_router(tasks_router(depends=[check]), prefix="/_tasks")
    client = app.test_client()
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:guess").decode()}

    assert client.get("/_tasks", headers=wrong).status_code == 401
    assert client.get("/_tasks", headers=AUTH).status_code == 200


def test_the_page_lists_tasks_newest_first_with_counts_and_errors():
    app = make_app()
    client = app.test_client()
    first = client.post("/orders/1").json
    second = client.post("/orders/2").json

    response = client.get("/_tasks", headers=AUTH)

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.text
    order = [second["charge"], second["ship"], first["charge"], first["ship"]]
    positions = [page.index(f'data-task-id="{task_id}"') for task_id in order]
    assert positions == sorted(positions)
    assert 'FAILED <span class="count">2</span>' in page
    assert 'SUCCESSFUL <span class="count">2</span>' in page
    assert "test_tasks_page.charge</code>" in page
    assert 'href="/_tasks/tasks.css"' in page
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_status_filter_shows_only_that_status_and_refuses_an_unknown_one():
    app = make_app()
    client = app.test_client()
    ids = client.post("/orders/1").json

    page = client.get("/_tasks?status=FAILED", headers=AUTH).text
    assert f'data-task-id="{ids["charge"]}"' in page
    assert f'data-task-id="{ids["ship"]}"' not in page
    assert "No RUNNING tasks." in client.get("/_tasks?status=RUNNING", headers=AUTH).text

    refused = client.get("/_tasks?status=BROKEN", headers=AUTH)
    assert refused.status_code == 422
    assert refused.json["detail"][0]["loc"] == ["query", "status"]


def test_task_names_and_errors_are_escaped():
    def nasty():
        raise RuntimeError('<script>alert("error")</script>')

    nasty.__qualname__ = "<script>alert('name')</script>"
    app = App(background_backend="inline")

    @app.post("/nasty")
    def start(*, background):
        return {"task": background.add_task(nasty).id}

    app.include_router(tasks_router(depends={"admin": HTTPBasic()}), prefix="/_tasks")
    client = app.test_client()
    task_id = client.post("/nasty").json["task"]

    for path in ["/_tasks", f"/_tasks/{task_id}"]:
        page = client.get(path, headers=AUTH).text
        assert "<script>" not in page, path
        assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in page
        assert "RuntimeError: &lt;script&gt;alert(&#34;error&#34;)&lt;/script&gt;" in page


def test_the_detail_page_and_its_json_and_an_unknown_id_is_404():
    app = make_app()
    client = app.test_client()
    ids = client.post("/orders/7").json

    page = client.get(f"/_tasks/{ids['charge']}", headers=AUTH)
    assert page.status_code == 200
    assert "card declined for &lt;script&gt;alert(7)&lt;/script&gt;" in page.text

    as_json = client.get(
        f"/_tasks/{ids['charge']}", headers={**AUTH, "Accept": "application/json"}
    ).json
    assert as_json["status"] == FAILED
    assert as_json["error"] == "ValueError: card declined for <script>alert(7)</script>"
    listed = client.get("/_tasks", headers={**AUTH, "Accept": "application/json"}).json
    assert [task["id"] for task in listed["tasks"]] == [ids["charge"], ids["ship"]]
    assert listed["counts"]["FAILED"] == 1

    assert client.get("/_tasks/nope-1", headers=AUTH).status_code == 404
    assert client.post("/_tasks/nope-1/forget", headers=SAME_ORIGIN).status_code == 404


def test_forget_removes_a_finished_task_and_redirects_back_to_the_list():
    app = make_app()
    client = app.test_client()
    ids = client.post("/orders/1").json

    response = client.post(f"/_tasks/{ids['charge']}/forget?status=FAILED", headers=SAME_ORIGIN)

    assert response.status_code == 303
    assert response.headers["Location"] == "/_tasks?status=FAILED"
    assert app.background.status(ids["charge"]) is None
    assert app.background.status(ids["ship"]) is not None
    page = client.get("/_tasks", headers=AUTH).text
    assert ids["charge"] not in page
    assert client.post(f"/_tasks/{ids['charge']}/forget", headers=SAME_ORIGIN).status_code == 404


def test_forget_refuses_a_task_that_has_not_finished():
    app = make_app(backend="record")
    client = app.test_client()
    ids = client.post("/orders/1").json
    assert app.background.status(ids["ship"]).status == READY

    page = client.get("/_tasks", headers=AUTH).text
    assert "Forget" not in page
    assert client.post(f"/_tasks/{ids['ship']}/forget", headers=SAME_ORIGIN).status_code == 409
    assert app.background.status(ids["ship"]) is not None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "http://evil.example/_tasks"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=["no origin", "other origin", "null origin", "other referer", "cross-site", "same-site"],
)
def test_a_post_from_another_site_is_refused_with_403(headers):
    app = make_app()
    client = app.test_client()
    ids = client.post("/orders/1").json

    response = client.post(f"/_tasks/{ids['charge']}/forget", headers={**AUTH, **headers})

    assert response.status_code == 403
    assert "must come from the page itself" in response.json["detail"]
    assert app.background.status(ids["charge"]) is not None


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Referer": "http://localhost/_tasks?status=FAILED"},
        {"Origin": "https://localhost:443"},
    ],
    ids=["fetch metadata", "referer", "https origin behind a proxy"],
)
def test_a_post_from_the_page_itself_is_accepted(headers):
    app = make_app()
    client = app.test_client()
    ids = client.post("/orders/1").json

    response = client.post(f"/_tasks/{ids['charge']}/forget", headers={**AUTH, **headers})

    assert response.status_code == 303


def test_retry_is_refused_with_405_on_a_backend_without_retry():
    app = make_app(backend="thread")
    client = app.test_client()
    ids = client.post("/orders/1").json

    assert "Retry" not in client.get("/_tasks", headers=AUTH).text
    response = client.post(f"/_tasks/{ids['charge']}/retry", headers=SAME_ORIGIN)

    assert response.status_code == 405
    assert response.headers["Allow"] == ""
    assert "cannot retry" in response.json["detail"]


class RetryingBackend(InlineBackend):
    """An in-process backend that says it retries: the page offers Retry for FAILED tasks."""

    def __init__(self):
        super().__init__()
        self.retried = []

    def retry(self, task_id):
        self.retried.append(task_id)
        return True


def test_retry_of_a_failed_task_on_a_backend_with_retry():
    backend = RetryingBackend()
    app = make_app(backend=backend)
    client = app.test_client()
    ids = client.post("/orders/1").json

    page = client.get("/_tasks", headers=AUTH).text
    assert page.count('class="retry"') == 1
    assert f'action="/_tasks/{ids["charge"]}/retry"' in page

    response = client.post(f"/_tasks/{ids['charge']}/retry", headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert response.headers["Location"] == "/_tasks"
    assert backend.retried == [ids["charge"]]

    assert client.post(f"/_tasks/{ids['ship']}/retry", headers=SAME_ORIGIN).status_code == 409
    assert client.post("/_tasks/nope-1/retry", headers=SAME_ORIGIN).status_code == 404
    assert backend.retried == [ids["charge"]]


def test_retry_of_a_failed_sqlite_task_runs_it_again_from_the_page(tmp_path):
    from funapi_sync.backends.sqlite import SQLiteBackend

    app = make_app(backend=SQLiteBackend(str(tmp_path / "tasks.sqlite3")))
    client = app.test_client()
    ids = client.post("/orders/1").json
    assert app.background.drain(timeout=10)

    page = client.get("/_tasks", headers=AUTH).text
    assert page.count('class="retry"') == 1  # the FAILED charge, not the SUCCESSFUL ship
    assert f'action="/_tasks/{ids["charge"]}/retry"' in page

    response = client.post(f"/_tasks/{ids['charge']}/retry", headers=SAME_ORIGIN)
    assert response.status_code == 303
    assert app.background.drain(timeout=10)
    charged = app.background.status(ids["charge"])
    assert (charged.status, charged.attempts) == (FAILED, 2)  # it ran again (and failed)
    assert app.background.status(ids["ship"]).attempts == 1  # the rest of the request did not
    assert client.post(f"/_tasks/{ids['ship']}/retry", headers=SAME_ORIGIN).status_code == 409

    assert client.post(f"/_tasks/{ids['ship']}/forget", headers=SAME_ORIGIN).status_code == 303
    assert app.background.status(ids["ship"]) is None
    app.background.close()


def test_the_page_is_left_out_of_the_openapi_document():
    app = make_app()

    paths = app.test_client().get("/openapi.json").json["paths"]

    assert list(paths) == ["/orders/{order}"]


def test_the_page_mounted_at_the_root_links_from_the_root():
    app = App(background_backend="inline")
    app.include_router(tasks_router())
    client = app.test_client()

    page = client.get("/").text

    assert 'href="/tasks.css"' in page
    assert client.get("/tasks.css").mimetype == "text/css"


def test_a_tasks_router_serves_one_app():
    router = tasks_router()
    App().include_router(router, prefix="/_tasks")

    with pytest.raises(ValueError, match=r"already serves another app's tasks; call tasks_router"):
        App().include_router(router, prefix="/_tasks")


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_a_limit_that_is_no_positive_int_is_refused(limit):
    with pytest.raises(ValueError, match=r"limit must be a positive int"):
        tasks_router(limit=limit)


def test_the_list_shows_at_most_limit_tasks_and_says_the_count_is_capped():
    app = make_app(limit=2)
    client = app.test_client()
    client.post("/orders/1")
    client.post("/orders/2")

    page = client.get("/_tasks", headers=AUTH).text

    assert page.count('<tr class="task"') == 2
    assert 'SUCCESSFUL <span class="count">2+</span>' in page
