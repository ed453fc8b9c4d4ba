"""Enqueue one RQ job at most once, whatever Redis does, and know whether it landed.

RQ's enqueue is a pipeline; redis-py resends a pipeline whose reply timed out, and a Redis
that was only slow then runs it twice: one request, two jobs. Here the job id is fixed
before the first attempt, and RQ's own commands for the job are recorded (not sent) and
replayed inside one Lua script that first sets a guard key ``funapi_sync:enqueue:<job id>``
with ``SET NX``: a second attempt, or a late first one, finds the guard and pushes nothing.
When no attempt got an answer, the guard settles the outcome: claiming it as
``abandoned`` makes any attempt still in flight a no-op, so "not enqueued" is then true.
"""

from __future__ import annotations

import enum
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError
from rq import Queue

from ._rq_redis import UNREACHABLE

#: The guard key's prefix; its value is ``enqueued`` or ``abandoned``.
GUARD_KEY = "funapi_sync:enqueue:"
#: How long a guard is kept (1 hour): far longer than an attempt can stay in flight.
GUARD_TTL = 3600

# KEYS[1] the guard; ARGV[1] its TTL, then each recorded command as its length and words.
ENQUEUE_SCRIPT = """
if not redis.call('SET', KEYS[1], 'enqueued', 'NX', 'EX', ARGV[1]) then
  return redis.call('GET', KEYS[1])
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 'new'
"""

# Claim the guard for a job whose enqueue got no answer: after this, no attempt can land.
SETTLE_SCRIPT = """
if redis.call('SET', KEYS[1], 'abandoned', 'NX', 'EX', ARGV[1]) then
  return 'abandoned'
end
return redis.call('GET', KEYS[1])
"""


class Outcome(enum.Enum):
    ENQUEUED = "enqueued"
    NOT_ENQUEUED = "not enqueued"
    #: Redis took the command but never answered, and could not be asked again.
    UNKNOWN = "unknown"


class _NotSent(Exception):
    """The command never left this process (no connection): it cannot have run."""


class _Ambiguous(Exception):
    """The command may have reached Redis: it may have run."""


def enqueue_once(
    queue: Queue, data: Any, connection: Redis
) -> tuple[Outcome, BaseException | None]:
    """Enqueue ``data`` (``Queue.prepare_data`` with a ``job_id``) at most once.

    Two attempts of the guarded script (the second one is the reconnect), then, if any
    attempt may have reached Redis, one settling call. Returns the outcome and the last
    error (None when enqueued at the first attempt). Each call is bounded by the
    connection's socket timeouts, so this takes at most about three of them.
    """
    guard = GUARD_KEY + data.job_id
    recorder = connection.pipeline(transaction=False)
    try:
        queue.enqueue_many([data], pipeline=recorder)  # records RQ's commands, sends none
        words: list[Any] = [GUARD_TTL]
        for args, _options in recorder.command_stack:
            words.append(len(args))
            words.extend(args)
    finally:
        recorder.reset()
    error: BaseException | None = None
    maybe_sent = False
    for _attempt in range(2):
        try:
            reply = _call(connection, "EVAL", ENQUEUE_SCRIPT, 1, guard, *words)
        except (_NotSent, _Ambiguous) as exc:
            maybe_sent = maybe_sent or isinstance(exc, _Ambiguous)
            error = exc.__cause__
            continue
        except ResponseError as exc:  # Redis refused the script (OOM, ACL): nothing written
            return Outcome.NOT_ENQUEUED, exc
        return _outcome(reply), error
    if not maybe_sent:
        return Outcome.NOT_ENQUEUED, error
    try:
        reply = _call(connection, "EVAL", SETTLE_SCRIPT, 1, guard, GUARD_TTL)
    except (_NotSent, _Ambiguous, ResponseError):
        return Outcome.UNKNOWN, error
    return _outcome(reply), error


def _outcome(reply: Any) -> Outcome:
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return Outcome.NOT_ENQUEUED if text == "abandoned" else Outcome.ENQUEUED


def _call(connection: Redis, *args: Any) -> Any:
    """One attempt of one command, no retry, saying whether it may have reached Redis."""
    pool = connection.connection_pool
    try:
        conn = pool.get_connection()
    except UNREACHABLE as exc:
        raise _NotSent() from exc
    try:
        conn.send_command(*args)  # type: ignore[no-untyped-call]
        return conn.read_response()
    except UNREACHABLE as exc:
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise _Ambiguous() from exc
    finally:
        pool.release(conn)
