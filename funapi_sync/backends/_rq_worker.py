"""The rq worker behind ``funapi-sync worker``: a lease on each job, and the scheduler run.

rq's defaults notice a dead worker's job only after its 90 s heartbeat lapsed *and* a
10-minute maintenance pass, then fail it (or retry it, which waits for a scheduler that
``rq worker`` does not start). :class:`LeaseWorker` renews a job's entry every ``lease/3``
seconds, lets it lapse ``lease`` seconds after the last renewal, sweeps every ``lease/3``
seconds, and puts a lapsed job back at the front of its queue. Its work-horse dies with
it, so a job is never run by an orphan while another worker runs it again.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
from typing import Any

from rq import Queue, Worker
from rq.job import Job
from rq.registry import clean_registries
from rq.utils import current_timestamp, now
from rq.worker_registration import clean_worker_registry

logger = logging.getLogger("funapi_sync.background")

#: The job meta key counting how many times a job's worker died under it.
ABANDONED_META = "funapi_sync_abandoned"
#: A job abandoned this many times is left to RQ (a retry, else FAILED): it may be what
#: kills its workers (out of memory).
MAX_ABANDONED = 3
#: ``--burst`` waits for a scheduled retry due within this many seconds, and no longer.
BURST_HORIZON = 300.0
_PR_SET_PDEATHSIG = 1


class LeaseWorker(Worker):
    """rq's forking ``Worker`` with a ``lease`` (seconds) on each running job."""

    def __init__(self, queues: Any, *, lease: float, **kwargs: Any) -> None:
        self.lease = max(3, int(lease))
        step = max(1, self.lease // 3)
        # NOTE: worker_ttl - 15 is rq's dequeue timeout, so an idle worker sweeps each step.
        super().__init__(
            queues,
            job_monitoring_interval=step,
            maintenance_interval=step,
            worker_ttl=step + 15,
            **kwargs,
        )

    def get_heartbeat_ttl(self, job: Job) -> int:
        # rq's is the renewal interval + 60 s; the lease replaces the 60 s.
        return self.lease

    def clean_registries(self) -> None:
        """rq's maintenance, plus the requeue of lapsed jobs, under rq's per-queue lock."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                try:
                    requeue_abandoned(queue)
                    clean_registries(queue, self._exc_handlers)
                    clean_worker_registry(queue)
                    queue.intermediate_queue.cleanup(self, queue)
                finally:
                    queue.release_maintenance_lock()  # type: ignore[no-untyped-call]
        self.last_cleaned_at = now()  # type: ignore[assignment]

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        _die_with_parent()
        super().main_work_horse(job, queue)


def _die_with_parent() -> None:
    # NOTE: rq's work-horse calls setpgrp(), so killing the worker leaves it running the
    # job with no one renewing its lease; on Linux it is killed with its worker instead.
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the worker died before the prctl
        os._exit(1)


def requeue_abandoned(queue: Queue) -> int:
    """Put each job whose lease lapsed back at the front of ``queue``; return how many."""
    registry = queue.started_job_registry
    connection = queue.connection
    requeued = 0
    entries: list[Any] = connection.zrangebyscore(registry.key, 0, current_timestamp())
    for entry in entries:
        job = queue.fetch_job(registry.parse_job_id(entry))
        if job is None:
            continue
        count = int(job.meta.get(ABANDONED_META, 0))
        if count >= MAX_ABANDONED or not connection.zrem(registry.key, entry):
            continue  # left to rq's cleanup, or another worker took it
        job.meta[ABANDONED_META] = count + 1
        job.started_at = None
        job.ended_at = None
        queue.enqueue_job(job, at_front=True)
        requeued += 1
        logger.warning(
            "RQ job %s (%s) lost its worker mid-run (no heartbeat within its lease); put back"
            " at the front of queue %r (%d of %d times)",
            job.id,
            job.description,
            queue.name,
            count + 1,
            MAX_ABANDONED,
        )
    return requeued


def next_scheduled(queues: list[Queue]) -> float | None:
    """Seconds until the first scheduled job of ``queues`` is due (<= 0: due), or None."""
    first: float | None = None
    for queue in queues:
        key = queue.scheduled_job_registry.key
        found: list[Any] = queue.connection.zrange(key, 0, 0, withscores=True)
        if found:
            due = float(found[0][1])
            first = due if first is None else min(first, due)
    return None if first is None else first - time.time()


def work_burst(make_worker: Any) -> None:
    """Run until the queues are empty and no retry is scheduled within :data:`BURST_HORIZON`.

    Each round is a burst worker that first moves the due scheduled jobs to their queue
    (rq's scheduler, once); between rounds, sleep until the next retry is due.
    """
    while True:
        worker = make_worker()
        worker.work(burst=True, with_scheduler=True)
        wait = next_scheduled(worker.queues)
        if wait is None:
            return
        if wait > BURST_HORIZON:
            logger.warning(
                "--burst exits with jobs scheduled more than %.0f s ahead (the first in %.0f s);"
                " a worker without --burst runs them when due",
                BURST_HORIZON,
                wait,
            )
            return
        logger.info("--burst waits %.1f s for a scheduled retry", max(0.0, wait))
        # A scheduler lock held by another worker: it moves the job; poll at least each second.
        time.sleep(min(max(wait, 0.2), 1.0))
