"""Tracing: each background task in an OpenTelemetry span of its own, when the app uses it.

Internal; the backends call it where a task runs. A task gets a span when a valid span was
current where ``add_task`` was called: named ``background <dotted name>``, with the
attributes ``funapi.task.id`` and ``funapi.task.attempt``, an error status and the exception
recorded when the task raises, and a link to the request's span. ``App(task_tracing=...)``
says where the span goes: ``"child"`` (the default) also makes it a child of the request's
span, in its trace; ``"link"`` starts a new trace that only links back; ``"off"`` makes none.

NOTE: nothing here imports ``opentelemetry``. A span can only be current once something in
the process (the SDK's setup, an instrumentation) imported ``opentelemetry.trace``, so
"is it in ``sys.modules``" is the whole test, and an app without OpenTelemetry pays one dict
lookup per batch. The span current at ``add_task`` needs no capture of its own either: the
task keeps a copy of its adder's ``contextvars`` context, where OpenTelemetry keeps it.

The request's span is never held open: a task's span only refers to it (as its parent, a
link), and starts when the task does, after the response; tracing tools show a child that
outlives its parent as such.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .status import describe_error

if TYPE_CHECKING:
    import contextvars

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanContext, Tracer

    from .background import BackgroundTask

#: ``App(task_tracing=...)``: the task's span a child in the request's trace, linked to it.
CHILD = "child"
#: A new trace for the task, linked to the request's span.
LINK = "link"
#: No span.
OFF = "off"
MODES = (CHILD, LINK, OFF)

#: The module whose presence means the process uses OpenTelemetry.
_TRACE = "opentelemetry.trace"
#: The tracer of the last real tracer provider seen, with that provider.
_cached: tuple[object, Tracer] | None = None


def check_mode(name: str, value: Any) -> None:
    """The check of the ``task_tracing`` setting."""
    if value not in MODES:
        raise ValueError(
            f"{name} must be 'child' (each task's span a child of its request's span, the"
            " default), 'link' (a new trace per task, linked to the request's span) or"
            f" 'off' (no span), got {value!r}"
        )


def active(mode: str) -> bool:
    """Whether tasks of an app with ``task_tracing=mode`` may get spans in this process now.

    PERF: a comparison and a dict lookup; nothing is imported.
    """
    return mode != OFF and _TRACE in sys.modules


def run(task: BackgroundTask, attempt: int, mode: str) -> Any:
    """Run ``task`` in its context, in its span if a span was current where it was added.

    Call it only when :func:`active`. The span is current while the task runs, so the
    spans the task makes (an HTTP client's, a database's) are its children.
    """
    return task.context.run(_run_in_context, task, attempt, mode)


def _run_in_context(task: BackgroundTask, attempt: int, mode: str) -> Any:
    from opentelemetry import trace

    parent = trace.get_current_span().get_span_context()
    if not parent.is_valid:
        return task.fn(*task.args, **task.kwargs)
    # NOTE: in "child" mode the request's span is current here (the task's copy of its
    # adder's context): the new span's parent by default.
    with _span(task.name, task.id, attempt, parent, _new_trace() if mode == LINK else None):
        return task.fn(*task.args, **task.kwargs)


def capture(context: contextvars.Context | None = None) -> dict[str, str] | None:
    """The span current in ``context`` (default: here), as W3C trace context headers.

    For a backend that runs a task in another process: it stores the result with the task
    (a small JSON-ready dict) and gives it back to :func:`task_span`. None when no valid
    span is current, or OpenTelemetry is not in use.
    """
    if _TRACE not in sys.modules:
        return None
    if context is not None:
        return context.run(capture)
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


@contextmanager
def task_span(
    name: str, task_id: str, attempt: int, captured: Mapping[str, str] | None, mode: str
) -> Iterator[None]:
    """The span of task ``task_id`` run elsewhere: its attempt number ``attempt``.

    ``captured`` is what :func:`capture` returned where the task was added; ``mode`` is the
    app's ``task_tracing``. No span without one, with ``"off"``, or when OpenTelemetry is
    not in use in this process. The span is current inside the block.
    """
    if captured is None or not active(mode):
        yield
        return
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract(captured)
    parent = get_current_span(context).get_span_context()
    if not parent.is_valid:
        yield
        return
    with _span(name, task_id, attempt, parent, _new_trace() if mode == LINK else context):
        yield


@contextmanager
def _span(
    name: str, task_id: str, attempt: int, parent: SpanContext, context: Context | None
) -> Iterator[Span]:
    from opentelemetry.trace import Link, Status, StatusCode

    # NOTE: the exception is recorded here, for any BaseException (SystemExit stops the
    # batch), with the description TaskStatus.error shows: never the traceback in text.
    with _tracer().start_as_current_span(
        f"background {name}",
        context=context,
        links=(Link(parent),),
        attributes={"funapi.task.id": task_id, "funapi.task.attempt": attempt},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, describe_error(exc)))
            raise


def _new_trace() -> Context:
    from opentelemetry.context import Context

    # NOTE: an empty context has no current span: the span starts a trace of its own.
    return Context()


def _tracer() -> Tracer:
    """This package's tracer, from the tracer provider set now (kept until it changes)."""
    global _cached
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    cached = _cached
    if cached is not None and cached[0] is provider:
        return cached[1]
    version = getattr(sys.modules.get("funapi_sync"), "__version__", None)
    tracer = provider.get_tracer("funapi_sync", version)
    # NOTE: the proxy provider (none set yet) hands out tracers that bind to the first
    # real provider for good; asking each time follows a provider set later.
    if not isinstance(provider, trace.ProxyTracerProvider):
        _cached = (provider, tracer)
    return tracer
