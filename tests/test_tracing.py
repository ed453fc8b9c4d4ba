"""Each background task in its own OpenTelemetry span: child, link or off (funapi_sync.tracing).

The request's span is made as an app's own setup makes it, by opentelemetry-instrumentation-
wsgi's middleware around ``app.wsgi_app``; the spans are read from the SDK's in-memory
exporter. Requests go through werkzeug's ``Client`` with ``app.testing`` off, so the tasks
run on the thread backend's pool after the response, as in production.
"""

from __future__ import annotations

import contextvars
import logging
import threading

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from werkzeug.test import Client

from funapi_sync import App, tracing
from funapi_sync.background import task_name


def _set_global_provider(provider: TracerProvider | None) -> None:
    # NOTE: the API lets a process set its tracer provider once; OpenTelemetry's own test
    # utilities (opentelemetry.test.globals_test) reset it this way between tests.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def exporter():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _set_global_provider(provider)
    yield exporter
    provider.shutdown()
    _set_global_provider(None)


def send_email(address):
    return address


def charge(order):
    raise ValueError(f"card declined for order {order}")


def _traced_app(**settings) -> App:
    app = App(**settings)

    @app.post("/signup")
    def signup(*, background):
        return {"task": background.add_task(send_email, "ada@example.com").id}

    @app.post("/orders")
    def order(*, background):
        return {"task": background.add_task(charge, 7).id}

    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
    return app


def _post(app: App, path: str) -> str:
    response = Client(app).post(path, buffered=True)
    assert response.status_code == 200
    assert app.background.drain(timeout=10)
    return response.json["task"]


def _spans(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ReadableSpan]:
    spans = exporter.get_finished_spans()
    (request,) = [span for span in spans if span.kind == SpanKind.SERVER]
    (task,) = [span for span in spans if span.name.startswith("background ")]
    assert len(spans) == 2, [span.name for span in spans]
    return request, task


# -- the three modes ----------------------------------------------------------------------


def test_child_mode_makes_the_task_a_child_of_the_request_span_and_links_to_it(exporter):
    app = _traced_app()
    task_id = _post(app, "/signup")

    request, task = _spans(exporter)
    assert task.name == f"background {__name__}.send_email"
    assert task.attributes == {"funapi.task.id": task_id, "funapi.task.attempt": 1}
    assert task.parent == request.context
    assert task.context.trace_id == request.context.trace_id
    assert [link.context for link in task.links] == [request.context]
    assert task.status.status_code == StatusCode.UNSET
    assert task.kind == SpanKind.INTERNAL


def test_link_mode_starts_a_new_trace_that_links_back_to_the_request_span(exporter):
    app = _traced_app(task_tracing="link")
    task_id = _post(app, "/signup")

    request, task = _spans(exporter)
    assert task.name == f"background {__name__}.send_email"
    assert task.attributes == {"funapi.task.id": task_id, "funapi.task.attempt": 1}
    assert task.parent is None
    assert task.context.trace_id != request.context.trace_id
    assert [link.context for link in task.links] == [request.context]


def test_off_mode_makes_no_span_for_the_task(exporter):
    app = _traced_app(task_tracing="off")
    _post(app, "/signup")

    assert [span.kind for span in exporter.get_finished_spans()] == [SpanKind.SERVER]


@pytest.mark.parametrize("mode", ["child", "link"])
def test_a_raising_task_has_an_error_status_and_the_exception_recorded(exporter, mode, caplog):
    caplog.set_level(logging.WARNING, logger="funapi_sync.background")
    app = _traced_app(task_tracing=mode)
    task_id = _post(app, "/orders")

    _, task = _spans(exporter)
    assert task.status.status_code == StatusCode.ERROR
    assert task.status.description == "ValueError: card declined for order 7"
    (event,) = task.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "card declined for order 7"
    # The batch's failure policy is unchanged: the failure is still logged, with the id.
    assert f"[task {task_id}]" in caplog.text


def test_the_request_span_is_never_held_open_by_its_tasks(exporter):
    app = App()
    release = threading.Event()

    def gate():
        assert release.wait(timeout=10)

    @app.post("/signup")
    def signup(*, background):
        background.add_task(gate)
        background.add_task(send_email, "ada@example.com")
        return {}

    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
    Client(app).post("/signup", buffered=True)
    # NOTE: the request returned (its span ended in close()), the gate task still blocks.
    (request,) = exporter.get_finished_spans()
    release.set()
    assert app.background.drain(timeout=10)

    gate_span, task = exporter.get_finished_spans()[1:]
    assert request.kind == SpanKind.SERVER
    assert gate_span.name == f"background {task_name(gate)}"
    assert task.start_time > request.end_time
    assert task.parent == request.context


# -- when there is nothing to trace -------------------------------------------------------


def test_without_a_current_span_a_task_gets_none(exporter):
    app = _traced_app()
    app.wsgi_app = app.wsgi_app.wsgi  # the middleware taken off: no request span

    _post(app, "/signup")

    assert exporter.get_finished_spans() == ()


def test_without_opentelemetry_in_use_tasks_run_untraced(monkeypatch):
    # What the batch decides once: no span can be current without opentelemetry.trace.
    monkeypatch.delitem(__import__("sys").modules, "opentelemetry.trace")
    assert not tracing.active("child")
    assert not tracing.active("off")
    assert tracing.capture() is None


# -- inside the task ------------------------------------------------------------------------


def test_the_task_span_is_current_while_the_task_runs(exporter):
    app = App()
    inside = []

    def look():
        inside.append(trace.get_current_span().get_span_context())
        with trace.get_tracer("test").start_as_current_span("query"):
            pass

    @app.post("/look")
    def handler(*, background):
        background.add_task(look)
        return {}

    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
    Client(app).post("/look", buffered=True)
    assert app.background.drain(timeout=10)

    by_name = {span.name: span for span in exporter.get_finished_spans()}
    task = by_name[f"background {task_name(look)}"]
    assert inside == [task.context]
    assert by_name["query"].parent == task.context


def test_a_task_added_by_a_task_is_a_child_of_the_task_that_added_it(exporter):
    app = App()

    def first(background):
        background.add_task(send_email, "later@example.com")

    @app.post("/chain")
    def handler(*, background):
        background.add_task(first, background)
        return {}

    app.wsgi_app = OpenTelemetryMiddleware(app.wsgi_app)
    Client(app).post("/chain", buffered=True)
    assert app.background.drain(timeout=10)

    spans = {span.name.rpartition(".")[2]: span for span in exporter.get_finished_spans()}
    (request,) = [span for span in spans.values() if span.kind == SpanKind.SERVER]
    assert spans["first"].parent == request.context
    assert spans["send_email"].parent == spans["first"].context


# -- the hook for backends that run tasks elsewhere ----------------------------------------


@pytest.mark.parametrize("mode", ["child", "link"])
def test_task_span_from_a_captured_context_follows_the_mode(exporter, mode):
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        # What a durable backend keeps with the task: from the task's copied context.
        captured = tracing.capture(contextvars.copy_context())
    assert captured is not None
    assert set(captured) == {"traceparent"}

    # Elsewhere (another process), with nothing current.
    with tracing.task_span("app.tasks.send_email", "abc-1", 2, captured, mode):
        inside = trace.get_current_span().get_span_context()

    task = exporter.get_finished_spans()[-1]
    assert task.name == "background app.tasks.send_email"
    assert task.attributes == {"funapi.task.id": "abc-1", "funapi.task.attempt": 2}
    assert inside == task.context
    assert [link.context.span_id for link in task.links] == [request.get_span_context().span_id]
    if mode == "child":
        assert task.parent.span_id == request.get_span_context().span_id
        assert task.context.trace_id == request.get_span_context().trace_id
    else:
        assert task.parent is None
        assert task.context.trace_id != request.get_span_context().trace_id


def test_task_span_records_the_failure_and_lets_it_through(exporter):
    with trace.get_tracer("test").start_as_current_span("request"):
        captured = tracing.capture()

    with pytest.raises(SystemExit), tracing.task_span("stop", "abc-2", 1, captured, "child"):
        raise SystemExit(3)

    (task,) = [span for span in exporter.get_finished_spans() if span.name == "background stop"]
    assert task.status.status_code == StatusCode.ERROR
    assert task.status.description == "SystemExit: 3"


@pytest.mark.parametrize(
    ("captured", "mode"),
    [(None, "child"), ({"traceparent": "00-garbage"}, "child"), ("CAPTURED", "off")],
)
def test_task_span_makes_none_without_a_valid_captured_span_or_when_off(exporter, captured, mode):
    if captured == "CAPTURED":
        with trace.get_tracer("test").start_as_current_span("request"):
            captured = tracing.capture()
    exporter.clear()

    with tracing.task_span("app.tasks.x", "abc-3", 1, captured, mode):
        assert not trace.get_current_span().get_span_context().is_valid

    assert exporter.get_finished_spans() == ()


def test_capture_is_none_without_a_current_span(exporter):
    assert tracing.capture() is None
    assert tracing.capture(contextvars.copy_context()) is None


# -- the setting ------------------------------------------------------------------------------


def test_task_tracing_defaults_to_child_and_refuses_an_unknown_mode_naming_the_choices():
    assert App().settings.task_tracing == "child"
    with pytest.raises(ValueError, match=r"^task_tracing must be 'child'") as info:
        App(task_tracing="children")
    assert str(info.value) == (
        "task_tracing must be 'child' (each task's span a child of its request's span, the"
        " default), 'link' (a new trace per task, linked to the request's span) or 'off'"
        " (no span), got 'children'"
    )


def test_the_inline_backend_and_the_testing_twin_trace_their_tasks_too(exporter):
    testing = _traced_app()
    testing.testing = True
    for app in (_traced_app(background_backend="inline"), testing):
        exporter.clear()

        task_id = _post(app, "/signup")

        request, task = _spans(exporter)
        assert task.attributes["funapi.task.id"] == task_id
        assert task.parent == request.context


def test_a_tracer_provider_set_after_the_first_task_gets_the_later_spans():
    captured = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    _set_global_provider(None)
    with tracing.task_span("early", "abc-4", 1, captured, "child"):
        pass  # no provider yet: the API's no-op span

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _set_global_provider(provider)
    try:
        with tracing.task_span("late", "abc-5", 1, captured, "child"):
            pass
    finally:
        provider.shutdown()
        _set_global_provider(None)

    assert [span.name for span in exporter.get_finished_spans()] == ["background late"]
    (span,) = exporter.get_finished_spans()
    assert span.parent.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent.is_remote


# -- the SQLite backend: the request's span stored with the row -----------------------------


def _sqlite_app(tmp_path, mode: str) -> App:
    from funapi_sync.backends.sqlite import SQLiteBackend

    backend = SQLiteBackend(str(tmp_path / "tasks.sqlite3"))
    return _traced_app(task_tracing=mode, background_backend=backend)


def _ids(context) -> tuple[int, int]:
    # NOTE: a context read back from a traceparent is marked remote: compare the ids.
    return context.trace_id, context.span_id


def _stored_call(app: App, task_id: str) -> dict:
    import json

    return json.loads(app.background.store.get(task_id).call)


@pytest.mark.parametrize("mode", ["child", "link"])
def test_a_sqlite_task_gets_its_span_from_the_row_not_from_the_adders_context(
    exporter, tmp_path, mode
):
    # NOTE: the runner runs a row in a fresh context (what another process would have): the
    # request's span reaches the task only through the traceparent stored in the row.
    app = _sqlite_app(tmp_path, mode)
    try:
        task_id = _post(app, "/signup")
        stored = _stored_call(app, task_id)
    finally:
        app.background.close()

    request, task = _spans(exporter)
    assert stored["trace"]["traceparent"].split("-")[1] == format(request.context.trace_id, "032x")
    assert task.name == f"background {__name__}.send_email"
    assert task.attributes == {"funapi.task.id": task_id, "funapi.task.attempt": 1}
    assert [_ids(link.context) for link in task.links] == [_ids(request.context)]
    if mode == "child":
        assert _ids(task.parent) == _ids(request.context)
        assert task.context.trace_id == request.context.trace_id
    else:
        assert task.parent is None
        assert task.context.trace_id != request.context.trace_id


def test_a_retried_sqlite_task_has_a_span_for_attempt_two_in_the_same_trace(
    exporter, tmp_path, caplog
):
    app = _sqlite_app(tmp_path, "child")
    try:
        with caplog.at_level(logging.CRITICAL, logger="funapi_sync.background"):
            task_id = _post(app, "/orders")
            assert app.background.retry(task_id)
            assert app.background.drain(timeout=10)
    finally:
        app.background.close()

    spans = exporter.get_finished_spans()
    (request,) = [span for span in spans if span.kind == SpanKind.SERVER]
    tasks = [span for span in spans if span.name.startswith("background ")]
    assert [span.attributes["funapi.task.attempt"] for span in tasks] == [1, 2]
    for task in tasks:
        assert task.attributes["funapi.task.id"] == task_id
        assert _ids(task.parent) == _ids(request.context)
        assert task.status.status_code == StatusCode.ERROR
        assert task.status.description == "ValueError: card declined for order 7"


def test_a_sqlite_app_with_tracing_off_stores_no_trace_and_makes_no_task_span(exporter, tmp_path):
    app = _sqlite_app(tmp_path, "off")
    try:
        task_id = _post(app, "/signup")
        assert "trace" not in _stored_call(app, task_id)
    finally:
        app.background.close()
    assert [span.name for span in exporter.get_finished_spans()] == ["POST /signup"]
