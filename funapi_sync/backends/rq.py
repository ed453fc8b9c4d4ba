"""RQBackend: hand a request's background tasks to RQ on Redis, one job per request.

Install with ``pip install -e '.[rq]'`` from a clone of the project. See
docs/durable-tasks.md for when to use it, how to run the workers, and what changes compared
with the in-process pool.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

try:
    from redis import Redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry as RedisRetry
    from rq import Queue, Retry, get_current_job
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "funapi_sync.backends.rq needs rq and redis: pip install 'rq>=2.12,<3' 'redis>=5,<8.2'"
        " (from a clone of funapi_sync: pip install -e '.[rq]')"
    ) from exc

from ..background import task_name
from ..pool import Batch, PoolSettings, get_pool
from ..status import TaskStatus, check_query
from ._common import finish
from ._rq_enqueue import Outcome, enqueue_once
from ._rq_redis import UNREACHABLE, RedisUnreachable, redis_url, unreachable
from ._rq_worker import LeaseWorker, work_burst
from .portable import CarriedTask, carry, check_portable, restore

if TYPE_CHECKING:
    from ..app import App
    from ..background import BackgroundTask

logger = logging.getLogger("funapi_sync.background")

#: The Redis key prefix of a job's progress (the indexes of its tasks that succeeded).
PROGRESS_KEY = "funapi_sync:done:"
#: How long a failed job's progress is kept, so ``rq requeue`` resumes it (30 days).
PROGRESS_TTL = 30 * 24 * 3600


class RQBackend:
    """Hand each request's tasks to RQ as **one job** that runs them in order on a worker.

    :param redis: a Redis URL (``"redis://localhost:6379/0"``) or a ``redis.Redis``.
    :param queue: the RQ queue's name.
    :param retry: an ``rq.Retry``; a retried job resumes at the task that failed.
    :param job_timeout: seconds for the whole request's job (RQ's default: 180).
    :param fallback: when the job was certainly not enqueued in ``close()`` (Redis
        unreachable): ``"thread"`` runs the tasks in this process's pool, ``"error"`` drops
        them; both log each at ERROR. When Redis took the job but never answered, the
        enqueue is settled first (see :func:`~funapi_sync.backends._rq_enqueue.enqueue_once`):
        a request is never two jobs, and a task logged as not enqueued never runs.
    :param persist: ``"after_response"`` (the job is enqueued in ``close()``) or
        ``"before_response"`` (enqueued before the status line: a 202 means the job is in
        Redis; if it is not, the client gets 503 with ``Retry-After`` and no fallback
        runs). The route option ``persist=`` overrides it for one route.
    :param timeout: socket and connect timeout (seconds) of a connection made from a URL;
        it bounds ``close()`` (about three times this at worst: the attempt, the reconnect
        and the settling call) so a slow Redis cannot hold a gunicorn worker past its
        heartbeat. A ``redis.Redis`` passed in keeps its own timeouts.
    :param lease: seconds after which ``funapi-sync worker`` puts back on the queue the job
        of a worker that died mid-run (no heartbeat: SIGKILL, lost machine); measured
        recovery is within ``lease * 5/3`` (50 s for the default 30).

    NOTE: one job per request, not one per task: one round trip in ``close()`` whatever
    the number of tasks, the request's order kept on any number of workers, and one
    retry story: the job reruns from the task that failed, never the ones that succeeded.
    """

    def __init__(
        self,
        redis: str | Redis,
        queue: str = "default",
        retry: Retry | None = None,
        job_timeout: int | None = None,
        fallback: Literal["thread", "error"] = "thread",
        persist: Literal["after_response", "before_response"] = "after_response",
        *,
        timeout: float = 2.0,
        lease: float = 30.0,
    ) -> None:
        if fallback not in ("thread", "error"):
            raise ValueError(f"RQBackend(fallback={fallback!r}): use 'thread' or 'error'")
        if persist not in ("after_response", "before_response"):
            raise ValueError(
                f"RQBackend(persist={persist!r}): use 'after_response' or 'before_response'"
            )
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"RQBackend(retry={retry!r}) takes an rq.Retry, e.g. Retry(max=3)")
        if isinstance(redis, str):
            self.connection = Redis.from_url(
                redis,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=RedisRetry(NoBackoff(), 1),
            )
        elif isinstance(redis, Redis):
            self.connection = redis
            kwargs = redis.connection_pool.connection_kwargs
            if kwargs.get("socket_timeout") is None:
                logger.warning(
                    "RQBackend got a redis.Redis without socket_timeout: a slow Redis can"
                    " hold a server thread in close() indefinitely; pass socket_timeout="
                    " (and socket_connect_timeout=) to redis.Redis, or pass a URL"
                )
        else:
            raise TypeError(
                f"RQBackend() takes a Redis URL or a redis.Redis, got {type(redis).__name__}"
            )
        self.queue_name = queue
        self.retry = retry
        self.job_timeout = job_timeout
        self.fallback = fallback
        #: When a request's tasks count as accepted (SPEC §11); the route option overrides it.
        self.persist = persist
        self.lease = lease
        self.queue = Queue(queue, connection=self.connection, default_timeout=job_timeout)
        self.settings = PoolSettings()
        self._lock = threading.Lock()
        self._counts = {"enqueued": 0, "fallback": 0, "not_enqueued": 0, "unknown": 0}

    def __repr__(self) -> str:
        return f"RQBackend(queue={self.queue_name!r}, fallback={self.fallback!r})"

    # -- the app side -----------------------------------------------------------------

    def check(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Refuse at ``add_task`` what an rq worker could not run (see :func:`check_portable`)."""
        check_portable(fn, args, kwargs)

    def bind(self, settings: PoolSettings) -> None:
        # The fallback pool is the app's, sized by its background_* settings.
        self.settings = settings

    def submit(self, batch: Batch) -> None:
        """Enqueue ``batch`` as one job (one round trip), then run its cleanup here.

        NOTE: dependencies are not carried to the worker, so the batch's cleanup runs
        right after the enqueue; a value a task needs must be passed as an argument.
        A task added once the batch is carried away (from a thread the handler started)
        raises ``RuntimeError``: it could not join the job.
        """
        batch.refuse_new()
        outcome, error = self._enqueue(batch.tasks, batch.label)
        if outcome is Outcome.NOT_ENQUEUED:
            self._fall_back(batch, error or RuntimeError("not enqueued"))
            return
        if outcome is Outcome.UNKNOWN:
            self._unknown(batch, error)
        else:
            with self._lock:
                self._counts["enqueued"] += len(batch.tasks)
        finish(batch)

    def persist_tasks(self, tasks: Sequence[BackgroundTask], label: str) -> None:
        """Enqueue ``tasks`` as one request's job now, before its response.

        ``persist="before_response"``: the response says "stored" only if the job is in
        Redis, so a job not enqueued, or one whose fate Redis did not tell, raises and the
        client gets 503 (no fallback: a 202 must never mean "run here, maybe").
        """
        outcome, error = self._enqueue(tasks, label)
        if outcome is not Outcome.ENQUEUED:
            raise ConnectionError(
                f"the tasks of {label} were not enqueued on RQ queue {self.queue_name!r}"
                f" ({outcome.name.lower()}: {error})"
            )
        with self._lock:
            self._counts["enqueued"] += len(tasks)

    def _enqueue(
        self, tasks: Sequence[BackgroundTask], label: str
    ) -> tuple[Outcome, BaseException | None]:
        try:
            data = Queue.prepare_data(
                run_request,
                args=(label, [carry(task) for task in tasks]),
                timeout=self.job_timeout,
                retry=self.retry,
                description=f"{label}: {', '.join(t.name for t in tasks)}",
                job_id=uuid.uuid4().hex,  # fixed before the first attempt: see enqueue_once
            )
            return enqueue_once(self.queue, data, self.connection)
        except Exception as exc:  # nothing was sent: recording RQ's commands failed
            return Outcome.NOT_ENQUEUED, exc

    def _unknown(self, batch: Batch, exc: BaseException | None) -> None:
        # NOTE: neither fallback applies: running the tasks here could run them twice, and
        # "not enqueued" could be false. Say what is known, once, at ERROR.
        logger.error(
            "could not tell whether the tasks of %s were enqueued on RQ queue %r (%s: %s);"
            " Redis took the job but did not answer: a worker runs them if it landed, and"
            " they are not run here, so as never to run them twice: %s",
            batch.label,
            self.queue_name,
            type(exc).__name__,
            exc,
            ", ".join(task.name for task in batch.tasks),
        )
        with self._lock:
            self._counts["unknown"] += len(batch.tasks)

    def _fall_back(self, batch: Batch, exc: BaseException) -> None:
        names = ", ".join(task.name for task in batch.tasks)
        if self.fallback == "thread":
            logger.error(
                "could not enqueue the tasks of %s on RQ queue %r (%s: %s); running them in"
                " this process instead (fallback='thread'): %s",
                batch.label,
                self.queue_name,
                type(exc).__name__,
                exc,
                names,
            )
            with self._lock:
                self._counts["fallback"] += len(batch.tasks)
            get_pool(self.settings).submit(batch, self.settings.submit_timeout)
            return
        for task in batch.tasks:
            logger.error(
                "background task %s of %s was not enqueued on RQ queue %r (%s: %s) and will"
                " not run (fallback='error')",
                task.name,
                batch.label,
                self.queue_name,
                type(exc).__name__,
                exc,
            )
        with self._lock:
            self._counts["not_enqueued"] += len(batch.tasks)
        finish(batch)

    # -- introspection ----------------------------------------------------------------

    @property
    def counts(self) -> dict[str, int]:
        """This process's tasks ``enqueued``, run in-process (``fallback``), ``not_enqueued``,
        and ``unknown`` (Redis took the job but never answered; see :meth:`submit`).

        Unlike :meth:`stats`, this asks Redis nothing, so it works while Redis is down.
        """
        with self._lock:
            return dict(self._counts)

    def stats(self) -> dict[str, int]:
        """Jobs on the queue (all processes) plus this process's hand-off counts.

        ``queued``, ``running``, ``scheduled`` (retries waiting for their interval) and
        ``failed`` count *jobs* (one per request) in Redis; ``completed`` counts jobs
        that finished; ``enqueued``, ``fallback``, ``not_enqueued`` and ``unknown`` count
        tasks this process handed over, ran in-process, dropped, or could not tell about.

        :raises ConnectionError: Redis cannot be reached; the message names its URL
            (``cannot reach Redis at redis://host:6379/0: Connection refused``). It is a
            :class:`~funapi_sync.backends.rq.RedisUnreachable`, also a redis-py
            ``ConnectionError``.
        """
        queue = self.queue
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.llen(queue.key)
                pipe.zcard(queue.started_job_registry.key)
                pipe.zcard(queue.scheduled_job_registry.key)
                pipe.zcard(queue.failed_job_registry.key)
                pipe.zcard(queue.finished_job_registry.key)
                queued, running, scheduled, failed, finished = pipe.execute()
        except UNREACHABLE as exc:
            raise unreachable(self.connection, exc) from exc
        return {
            "queued": int(queued),
            "running": int(running),
            "scheduled": int(scheduled),
            "failed": int(failed),
            "completed": int(finished),
            **self.counts,
        }

    def status(self, task_id: str) -> TaskStatus | None:
        """Always None: RQ keeps one job per request, not one per task.

        NOTE: a task's state would be its job's state plus the job's progress set, read
        from Redis by task index; the ids are not carried into the job yet. A 202-then-
        poll API needs a backend that keeps each task's state (see docs/task-status.md).
        """
        return None

    def tasks(self, status: str | None = None, limit: int = 100) -> list[TaskStatus]:
        """Always empty, for the reason :meth:`status` gives."""
        check_query(status, limit)
        return []

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the queue has no queued, running, scheduled or deferred job.

        Workers do the running: this asks Redis every 50 ms, runs nothing, and so returns
        True only once a worker (``funapi-sync worker APP``) has run every job, scheduled
        retries included, plus the in-process pool that ``fallback="thread"`` uses.

        :returns: True once idle, False when ``timeout`` seconds passed first.
        :raises ConnectionError: Redis cannot be reached (as :meth:`stats`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._busy():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        from .. import pool as pool_module

        current = pool_module.current_pool()
        if current is None:
            return True
        return current.drain(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _busy(self) -> bool:
        queue = self.queue
        keys = (
            queue.started_job_registry.key,
            queue.scheduled_job_registry.key,
            queue.deferred_job_registry.key,
        )
        try:
            with self.connection.pipeline(transaction=False) as pipe:
                pipe.llen(queue.key)
                # NOTE: a dequeued job sits in this list until it is in the started registry.
                pipe.llen(queue.intermediate_queue_key)
                for key in keys:
                    pipe.zcard(key)
                return any(pipe.execute())
        except UNREACHABLE as exc:
            raise unreachable(self.connection, exc) from exc

    # -- the worker side --------------------------------------------------------------

    def run_worker(self, app: App, *, burst: bool = False, queues: list[str] | None = None) -> int:
        """Run the app's startup hooks, an rq worker on this backend's queues, then shutdown.

        This is ``funapi-sync worker APP``. The worker forks a work-horse per job (RQ's
        default), which inherits what the startup hooks set up; it runs RQ's scheduler,
        so a retry with an interval runs when due, and it holds a ``lease`` on each job,
        so the job of a worker that died mid-run is run again by another within about
        ``lease * 5/3`` seconds (see :class:`~funapi_sync.backends._rq_worker.LeaseWorker`).

        :param burst: stop once the queues are empty and no retry is scheduled within the
            next 300 s (it waits for those; a later one is left, with a WARNING).
        :param queues: queue names (default: this backend's queue).
        :returns: the exit status, 0.
        :raises ConnectionError: Redis cannot be reached when the worker starts; the
            message names its URL (``funapi-sync worker`` prints it as one line).
        """
        from .._process import shutdown_process

        try:
            self.connection.ping()
        except UNREACHABLE as exc:
            raise unreachable(self.connection, exc) from exc
        names = queues or [self.queue_name]

        def make_worker() -> LeaseWorker:
            return LeaseWorker(names, connection=self.connection, lease=self.lease)

        app.lifecycle.ensure_started()
        try:
            if burst:
                work_burst(make_worker)
            else:
                make_worker().work(with_scheduler=True)
        finally:
            shutdown_process()
        return 0


# -- the job ------------------------------------------------------------------------


class _Task:
    """A carried task run like an in-process one: in its context, named in logs."""

    __slots__ = ("args", "context", "fn", "kwargs")

    def __init__(self, carried: CarriedTask) -> None:
        self.fn, self.args, self.kwargs, context = carried
        self.context = restore(context)

    @property
    def name(self) -> str:
        return task_name(self.fn)

    def run(self) -> Any:
        return self.context.run(self.fn, *self.args, **self.kwargs)


def run_request(label: str, tasks: list[CarriedTask]) -> int:
    """The job: run one request's tasks in order, in the context each was added in.

    Each task that succeeds is recorded in Redis, so a retry (``Retry``) or an
    ``rq requeue`` resumes at the first task that has not succeeded and never reruns
    one that did. A failing task is logged at WARNING; while RQ will retry the job, the
    job stops there (so later tasks keep their order behind it); on its last attempt the
    later tasks still run, as in-process, and the job then fails with the first error.

    :returns: the number of tasks run in this attempt.
    """
    job = get_current_job()
    done: set[int] = set()
    progress_key = None
    if job is not None:
        progress_key = PROGRESS_KEY + job.id
        done = {int(index) for index in job.connection.smembers(progress_key)}
    last_attempt = job is None or not job.should_retry
    first_error: BaseException | None = None
    ran = 0
    for index, carried in enumerate(tasks):
        if index in done:
            continue
        task = _Task(carried)
        ran += 1
        try:
            task.run()
        except Exception as exc:
            logger.warning(
                "background task %s of %s failed%s",
                task.name,
                label,
                "" if last_attempt else "; the job will be retried from this task",
                exc_info=True,
            )
            if not last_attempt:
                raise
            first_error = first_error or exc
            continue
        if job is not None and progress_key is not None:
            with job.connection.pipeline() as pipe:
                pipe.sadd(progress_key, index)
                pipe.expire(progress_key, PROGRESS_TTL)
                pipe.execute()
    if first_error is not None:
        raise first_error
    if job is not None and progress_key is not None:
        job.connection.delete(progress_key)
    return ran


__all__ = ["RQBackend", "RedisUnreachable", "check_portable", "redis_url", "run_request"]
