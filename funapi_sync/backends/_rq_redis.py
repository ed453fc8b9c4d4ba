"""RQ's Redis, named safely: its URL without the password, and one-line errors that name it."""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.connection import SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: The errors that mean "Redis could not be reached (or did not answer in time)".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisUnreachable(RedisConnectionError, ConnectionError):
    """Redis could not be reached: caught by ``except ConnectionError`` and by redis-py's.

    The message is one line, ``cannot reach Redis at redis://host:port/db: <reason>``;
    the URL never carries the password.
    """


def redis_url(connection: Redis) -> str:
    """The connection's URL without user or password (safe in logs and error messages)."""
    pool = connection.connection_pool
    kwargs: dict[str, Any] = pool.connection_kwargs
    if issubclass(pool.connection_class, UnixDomainSocketConnection):
        return f"unix://{kwargs.get('path', '')}?db={kwargs.get('db', 0)}"
    scheme = "rediss" if issubclass(pool.connection_class, SSLConnection) else "redis"
    host = kwargs.get("host", "localhost")
    host = f"[{host}]" if ":" in str(host) else host
    return f"{scheme}://{host}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def reason(exc: BaseException) -> str:
    """A short reason: the OS error's text (``Connection refused``), else redis-py's message."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror)
        seen = seen.__cause__ or seen.__context__
    if isinstance(exc, RedisTimeoutError):
        return f"no answer in time ({exc})"
    return str(exc) or type(exc).__name__


def unreachable(connection: Redis, exc: BaseException) -> RedisUnreachable:
    """The :class:`RedisUnreachable` to raise from ``exc`` (``raise unreachable(...) from exc``)."""
    return RedisUnreachable(f"cannot reach Redis at {redis_url(connection)}: {reason(exc)}")
