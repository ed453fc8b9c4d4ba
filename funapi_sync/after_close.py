"""AfterClose: the response body whose ``close()`` does the rest of a request's work.

Internal. When a request left work for later (tasks, ``after_response`` or ``after_tasks``
cleanups, uploads to close), its body is one :class:`AfterClose`, so that the server's
``close()`` runs: the ``after_response`` cleanups, then the hand-over of the tasks to the
app's backend, which runs the ``after_tasks`` cleanups after them (SPEC §6). With no
task, every phase runs in ``close()`` and nothing waits. Under ``app.testing`` (and
``test_client(raise_task_errors=True)``) the body is its testing twin,
:class:`TestingAfterClose`, which does the same work in the calling thread and raises.
A body that is never closed names what it loses.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._logtext import log_method, log_path, log_text
from .backends import RecordBackend
from .background import too_late
from .batch import Batch, close_request, report_never_closed
from .dependencies import AFTER_RESPONSE, AFTER_TASKS, CLEANUP_PHASES
from .exceptions import HTTPException
from .status import record_dropped, store_of
from .tracing import CHILD

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.wrappers import Request

    from .backends import Backend
    from .background import BackgroundTask, BackgroundTasks
    from .scope import RequestScope

logger = logging.getLogger("funapi_sync")
background_logger = logging.getLogger("funapi_sync.background")

#: The environ key of a list that collects the request's task batch (set by the test
#: client; a list, because servers and middleware may hand the app a shallow copy).
BATCHES_KEY = "funapi_sync.batches"
#: The environ key that makes a request run its tasks in the calling thread and raise
#: their failures (set by ``app.test_client(raise_task_errors=True)``).
RAISE_TASK_ERRORS_KEY = "funapi_sync.raise_task_errors"
#: The environ key of the request id that ``add_request_logger()`` sets.
REQUEST_ID_KEY = "funapi_sync.request_id"


class AfterClose(Batch):
    """One request's work for its response's ``close()``: its body, and the batch its tasks run in.

    It becomes the response iterable the server gets (:meth:`attach`). Its ``close()`` does
    that work: the ``after_response`` cleanups, then it hands itself to the app's backend
    as the request's :class:`~funapi_sync.batch.Batch` (the tasks, then the
    ``after_tasks`` cleanups as its ``after``). The tasks are taken from ``background``
    after the ``after_response`` cleanups, so a task one of them adds runs too.

    As :class:`~funapi_sync.middleware.ClosingIterable` does, ``close()`` is idempotent
    and an ``Exception`` from the inner ``close()`` is logged and does not stop the work;
    a body garbage-collected without ``close()`` says what is lost (:meth:`lost`).

    PERF: one object per request that leaves close() anything to do: the body, the
    close() hook and the batch, not a wrapper, a chain of closures and then a batch.
    """

    __slots__ = ("backend", "background", "body", "environ", "failure", "request", "scope", "where")

    def __init__(
        self,
        environ: WSGIEnvironment,
        backend: Backend,
        slow_warning: float,
        background: BackgroundTasks | None,
        scope: RequestScope | None,
        failure: BaseException | None,
        request: Request | None,
        task_tracing: str = CHILD,
    ) -> None:
        self.environ: WSGIEnvironment | None = environ
        self.backend = backend
        self.background = background
        self.scope = scope
        self.failure = failure
        self.request = request
        #: The server's body while the response is out; None before and after.
        self.body: Iterable[bytes] | None = None
        # PERF: Batch's fields set here, not by a super().__init__ call.
        self.tasks: list[BackgroundTask] = []
        self._label = None
        #: The request's method, path and request id: its label, formatted when read.
        self.where: tuple[str, str, str | None] = ("", "", None)
        self.after: Callable[[], Any] | None = None
        self.slow_warning = slow_warning
        self.task_tracing = task_tracing
        self.current = -1
        self.since = 0.0
        self.done = self.failed = 0
        self.cancelled = self.taken = self.finished = self.sealed = False
        self.reported = 0.0
        self.adopted = 0
        self.store = None
        self.enqueued_at = 0.0
        self.added_at = None

    def attach(self, body: Iterable[bytes]) -> Iterable[bytes]:
        """Become the response body around ``body`` (what the server iterates and closes)."""
        self.body = body
        return self

    # -- the response body ------------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        body = self.body
        return iter(() if body is None else body)

    def close(self) -> None:
        """The server's ``close()``: close the inner body, then do the work (once)."""
        body = self.body
        if body is None:
            return
        self.body = None
        try:
            _close_inner(body)
        except Exception:
            logger.exception("closing the response iterable failed")
        finally:
            # NOTE: also when a streamed body's close() was interrupted (gunicorn's
            # SystemExit on a worker timeout): the tasks still reach the backend, whose
            # shutdown or abort names what it cannot finish, and the exception goes on.
            try:
                self()
            except Exception:
                logger.exception("a response close callback failed")

    def __del__(self) -> None:
        # NOTE: a middleware that dropped close(), or a client that never closed the
        # response: its work can never run in close() now, so say what is lost.
        if self.body is not None:
            self.body = None
            # NOTE: an exception in __del__ would only be printed to stderr.
            with contextlib.suppress(Exception):
                self.lost()

    # -- the work ---------------------------------------------------------------------

    def __call__(self) -> None:
        """Run the ``after_response`` cleanups, then hand the tasks over (or run the rest)."""
        scope = self.scope
        if scope is None:
            self._hand_over()
            return
        try:
            if scope.exits[AFTER_RESPONSE]:
                scope.close_phase(AFTER_RESPONSE, self.failure)
        finally:
            self._hand_over()

    def make_label(self) -> str:
        return label_of(*self.where)

    def _hand_over(self) -> None:
        environ = self.environ
        assert environ is not None
        # PERF: three reads; the label is formatted only if a log line or an error needs it.
        self.where = (
            environ.get("REQUEST_METHOD", "-"),
            environ.get("PATH_INFO", "/"),
            environ.get(REQUEST_ID_KEY),
        )
        background = self.background
        if background is None:
            self._after_tasks()
            return
        # NOTE: the batch's own list (a copy), so a task added from another thread from
        # now on is taken by adopt() under a lock, never half-run; background.tasks still
        # lists the request's tasks for its cleanups.
        added = self.take(background, self.failure is not None)
        if len(added) > len(self.tasks):
            # A failed request runs only its add_task_always tasks: the others never will.
            record_dropped(self.backend, [task for task in added if not task.always])
        if not self.tasks:
            self._after_tasks()
            return
        scope = self.scope
        if (scope is not None and scope.exits[AFTER_TASKS]) or _has_uploads(self.request):
            self.after = self._after_tasks
        self._submit(environ)

    def _submit(self, environ: WSGIEnvironment) -> None:
        sink = environ.get(BATCHES_KEY)
        if sink is not None:
            sink.append(self)
        # NOTE: a queued batch keeps only what its tasks and its ``after`` use. The
        # server's environ (its socket, its buffers), the request and the rest are freed
        # here, by the thread that used them, not by a pool thread a few milliseconds
        # later; a task that takes ``req`` as an argument keeps it. A failure's traceback
        # would keep them all.
        self.environ = None
        if self.after is None:
            self.background = self.request = self.scope = self.failure = None
        # NOTE: gunicorn's sync worker holds the client socket until close() returns,
        # so this only enqueues.
        self.backend.submit(self)

    def _after_tasks(self) -> None:
        scope = self.scope
        try:
            if scope is not None and scope.exits[AFTER_TASKS]:
                scope.close_phase(AFTER_TASKS, self.failure)
        finally:
            # NOTE: werkzeug spools uploads to temporary files; close them after the
            # tasks (which may still read an upload) and the cleanups, or they leak.
            if _has_uploads(self.request):
                assert self.request is not None
                self.request.close()
            # NOTE: ``after`` is this bound method: drop the cycle it makes, so the
            # request and its scope are freed now, not by the garbage collector. A
            # status store may keep the batch a while (a task named DROPPED answers from
            # it): it keeps the tasks, not the request.
            self.after = None
            self.background = self.request = self.scope = self.failure = None

    def lost(self) -> None:
        """The response was garbage-collected without ``close()``: say what is lost.

        Each task is named at ERROR (it can never run now), and so is each dependency whose
        ``after_response`` or ``after_tasks`` cleanup was waiting for ``close()``; those
        cleanups then run here, so a connection or a lock is not leaked with the response.
        With neither (a request that only had uploads) it says nothing.
        NOTE: this runs on whatever thread collects the response; a cleanup that cannot
        run there (a SQLite connection made on another thread) fails, and is logged, as
        in close().
        """
        assert self.environ is not None  # set to None only once close() handed it over
        label = request_label(self.environ)
        background = self.background
        if background is not None:
            added = close_request(background, label)
            tasks = added if self.failure is None else [task for task in added if task.always]
            if tasks:
                report_never_closed(tasks, label)
            record_dropped(self.backend, added)
        scope = self.scope
        if scope is None:
            return
        for phase in (AFTER_RESPONSE, AFTER_TASKS):
            for name, _exit in scope.exits[phase]:
                background_logger.error(
                    "the %s cleanup of dependency %s of %s ran late: the response was"
                    " garbage-collected without close() (a middleware that does not"
                    " forward close(), or a client that never closed the response);"
                    " running it now",
                    CLEANUP_PHASES[phase],
                    name,
                    label,
                )
        for phase in (AFTER_RESPONSE, AFTER_TASKS):
            scope.close_phase(phase, self.failure)


class TestingAfterClose(AfterClose):
    """The testing twin: the same work, in the calling thread, with failures raised.

    werkzeug's own ``Client`` leaves the response iterable open until the test closes
    its ``TestResponse``, which most tests never do. So the work also starts when the
    body has been read to the end, which covers the three ways the ``Client`` reads a
    body: ``r = c.post(...)`` reads it when the test asks for ``r.json`` or ``r.data``;
    ``buffered=True`` reads it (and closes) inside the call; ``with c.post(...) as r``
    closes it at the end of the block. A failing task raises in the test that read the
    body, so the test fails.
    """

    __test__ = False  # not a pytest test class
    __slots__ = ()
    raise_failures = True

    def attach(self, body: Iterable[bytes]) -> Iterable[bytes]:
        """Do the work now when ``body`` is whole (a list), else once it is read or closed.

        NOTE: a test that asserts only the status (``Client(app).post(...).status_code``)
        neither reads nor closes the body: with the work done here, inside the app call,
        its tasks run (and a failing one raises from the call) instead of being reported
        at garbage collection, after the test passed. A streamed body cannot be read
        ahead (it may never end), so it keeps the read-or-close rule.
        """
        if type(body) is list:
            # A list has no close() of its own: the work done, the list is the body.
            self()
            return body
        self.body = body
        return self

    def __iter__(self) -> Iterator[bytes]:
        body = self.body
        if body is not None:
            yield from body
        self.close()

    def close(self) -> None:
        body = self.body
        if body is None:
            return
        self.body = None
        try:
            _close_inner(body)
        finally:
            self()

    def _submit(self, environ: WSGIEnvironment) -> None:
        # NOTE: testing runs the tasks any backend would run; a recording backend runs
        # none, so it still records: what it keeps is what the test asserts on.
        backend = self.backend
        if isinstance(backend, RecordBackend):
            backend.submit(self)
            return
        store = store_of(backend)
        if store is not None:
            self.track(store)
        self.run()


class _Testing(Protocol):
    testing: bool


class CloseRuntime(Protocol):
    """What the close-time work reads of its app (``endpoint.Runtime`` has it)."""

    @property
    def backend(self) -> Backend: ...
    @property
    def slow_warning(self) -> float: ...
    @property
    def task_tracing(self) -> str: ...
    @property
    def mode(self) -> _Testing: ...


def after_close(
    environ: WSGIEnvironment,
    runtime: CloseRuntime,
    background: BackgroundTasks | None,
    scope: RequestScope | None,
    failure: BaseException | None,
    request: Request | None,
) -> AfterClose | None:
    """The request's close-time work, or None when ``close()`` has nothing to do.

    The caller makes it the response body with :meth:`AfterClose.attach`.
    """
    if not (
        (
            background is not None
            and (background.tasks if failure is None else background.to_run(True))
        )
        or (scope is not None and (scope.exits[AFTER_RESPONSE] or scope.exits[AFTER_TASKS]))
        or _has_uploads(request)
    ):
        if background is not None:
            # NOTE: nothing of the request is left to run a task added later (a thread
            # the handler started): add_task raises from now on, never drops it.
            record_dropped(runtime.backend, close_request(background, request_label(environ)))
        return None
    testing = runtime.mode.testing or RAISE_TASK_ERRORS_KEY in environ
    twin = TestingAfterClose if testing else AfterClose
    return twin(
        environ,
        runtime.backend,
        runtime.slow_warning,
        background,
        scope,
        failure,
        request,
        runtime.task_tracing,
    )


#: Seconds a client is told to wait when its request's tasks could not be stored.
RETRY_AFTER = "5"


def persist_early(backend: Any, persist: str | None, where: str) -> bool:
    """Whether a route stores its tasks before its response (decided at registration).

    ``persist`` is the route option; None takes the backend's own ``persist``. Raises
    ValueError, with the fix, for a value that is not one, or for ``"before_response"``
    on a backend that stores nothing (the in-process ones).
    """
    if persist not in (None, "after_response", "before_response"):
        raise ValueError(f"{where}: persist={persist!r}; use 'after_response' or 'before_response'")
    storing = callable(getattr(backend, "persist_tasks", None))
    if persist == "before_response" and not storing:
        raise ValueError(
            f"{where}: persist='before_response' needs a durable background backend, which"
            f" stores tasks before the response; this app's is {backend!r}. Create the app"
            " with App(background_backend='sqlite') (or SQLiteBackend(...)), or drop persist="
        )
    chosen = persist if persist is not None else getattr(backend, "persist", None)
    return storing and chosen == "before_response"


def persist_now(
    environ: WSGIEnvironment,
    backend: Any,
    background: BackgroundTasks,
    failure: BaseException | None,
) -> Exception | None:
    """Store the request's tasks before its response; the 503 to send when they cannot be.

    Either way the tasks leave ``background``: stored, they are the backend's; not stored,
    each is named at ERROR and none runs. Under ``app.testing`` nothing is stored, and the
    tasks run in the calling thread as with every backend.
    """
    tasks = background.to_run(failure is not None)
    if not tasks or RAISE_TASK_ERRORS_KEY in environ:
        return None
    label = request_label(environ)
    error: Exception | None = None
    try:
        backend.persist_tasks(tasks, label)
    except Exception as exc:
        for task in tasks:
            background_logger.error(
                "background task %s of %s was not stored (%s: %s) and will not run;"
                " the client gets 503 (persist='before_response')",
                task.name,
                label,
                type(exc).__name__,
                exc,
            )
        error = HTTPException(
            503,
            "The request's work could not be stored; try again later.",
            headers={"Retry-After": RETRY_AFTER},
        )
    del background.tasks[:]
    return error


def close_now(
    environ: WSGIEnvironment,
    backend: Backend,
    background: BackgroundTasks | None,
    scope: RequestScope | None,
    failure: BaseException | None,
    request: Request | None,
) -> None:
    """Clean up a request whose response could not be handed to the server."""
    added = [] if background is None else close_request(background, request_label(environ))
    if added:
        # NOTE: nothing is dropped without a line saying so (the response never started,
        # so its tasks are not run, as for any request that failed).
        logger.error(
            "not running the background tasks %s of %s %s: the response could not be sent"
            " (%r) [tasks %s]",
            [task.name for task in added],
            log_method(environ),
            log_path(environ),
            failure,
            ", ".join(task.id for task in added),
        )
        record_dropped(backend, added)
    try:
        if scope is not None:
            scope.close(failure)
    finally:
        if _has_uploads(request):
            assert request is not None
            request.close()


class ClosedRequest:
    """A request with nothing left to run: a late ``add_task`` raises, naming it.

    PERF: a request whose handler takes ``background`` and adds no task pays for three
    reads here, not for formatting and escaping a label nobody reads.
    """

    __slots__ = ("_method", "_path", "_request_id")

    def __init__(self, environ: WSGIEnvironment) -> None:
        # NOTE: three strings, not the environ: that would keep the server's buffers.
        self._method = environ.get("REQUEST_METHOD", "-")
        self._path = environ.get("PATH_INFO", "/")
        self._request_id = environ.get(REQUEST_ID_KEY)

    def adopt(self, background: BackgroundTasks) -> None:
        raise too_late(label_of(self._method, self._path, self._request_id))


def request_label(environ: WSGIEnvironment) -> str:
    """``POST /signup request_id=…``: how task log lines name their request."""
    method, path = environ.get("REQUEST_METHOD", "-"), environ.get("PATH_INFO", "/")
    return label_of(method, path, environ.get(REQUEST_ID_KEY))


def label_of(method: str, path: str, request_id: str | None) -> str:
    """The label of a request with this method, path and request id (escaped for a log)."""
    label = f"{log_text(method)} {log_text(path)}"
    if request_id is not None:  # set by add_request_logger(): name it in task logs
        label = f"{label} request_id={request_id}"
    return label


def _close_inner(body: Iterable[bytes]) -> None:
    # PERF: most bodies are send()'s one-item list; getattr would raise and catch.
    inner_close = None if type(body) is list else getattr(body, "close", None)
    if inner_close is not None:
        inner_close()


def _has_uploads(request: Request | None) -> bool:
    # NOTE: only a request whose files were parsed has temporary files to close.
    return request is not None and bool(request.__dict__.get("files"))
