"""LazyRequest: a werkzeug ``Request`` that reads its environ on first use, not when made.

Internal: the app builds its ``request_class`` on it; handlers see a plain werkzeug
``Request`` (``isinstance`` holds, every attribute is werkzeug's own).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

#: The attributes werkzeug's ``Request.__init__`` computes from the environ (3.x).
DEFERRED = (
    "method",
    "scheme",
    "server",
    "root_path",
    "path",
    "query_string",
    "headers",
    "remote_addr",
)


class LazyRequest(Request):
    """A werkzeug ``Request`` whose ``__init__`` work is deferred to the first attribute read.

    werkzeug's ``Request.__init__`` computes eight attributes from the environ up front
    (:data:`DEFERRED`); everything else is already a ``cached_property`` derived from
    those or from the environ. Here construction only stores the environ, and the first
    read of one of the eight runs werkzeug's own ``__init__``, so the values are
    werkzeug's by construction, not a copy of its code. After that they are plain instance
    attributes, as in werkzeug: assigned, read and deleted the same way.

    PERF: a handler declared ``(input, req, task)`` that never touches ``req`` (the spec's
    shape) no longer pays for a request object it does not read (about 1.0 µs, a quarter
    of a whole ``GET /hello``); one that reads it pays werkzeug's price plus about 0.4 µs.

    NOTE: the eight are read from the environ when first used, not when the request was
    made. Nothing in between changes the keys werkzeug reads (the body reader swaps only
    ``wsgi.input``, which werkzeug reads lazily anyway), and middleware changes the
    environ before the app is called, so either way it sees the same values.
    """

    #: True until werkzeug's ``__init__`` has run on this instance.
    _deferred = True

    def __init__(
        self,
        environ: WSGIEnvironment,
        populate_request: bool = True,
        shallow: bool = False,
    ) -> None:
        self.environ = environ
        self.shallow = shallow
        if populate_request and not shallow:
            environ["werkzeug.request"] = self

    def __getattr__(self, name: str) -> Any:
        # NOTE: the safety net for an attribute a later werkzeug sets in __init__ that is
        # not in DEFERRED yet: Python calls this only when normal lookup failed. Dunder
        # probes (copy, pickle, markupsafe's __html__) are not a use and build nothing.
        if self._deferred and not (name.startswith("__") and name.endswith("__")):
            _build(self, self.__dict__)
        return object.__getattribute__(self, name)


_init = Request.__init__


def _build(request: LazyRequest, state: dict[str, Any]) -> None:
    # Whatever is already on the instance (a cached_property read, a value the handler
    # assigned) wins over what __init__ sets, as if __init__ had run first.
    already = dict(state) if len(state) > 2 else None  # more than environ and shallow
    request._deferred = False
    _init(request, state["environ"], False, state["shallow"])
    if already is not None:
        state.update(already)


class _Deferred:
    """A class attribute standing in for one of :data:`DEFERRED` until the first read.

    A non-data descriptor: once ``__init__`` has set the instance attribute, the instance
    dict wins and reads no longer come here.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, request: LazyRequest | None, owner: type[Any] | None = None) -> Any:
        if request is None:
            return self
        state = request.__dict__
        if request._deferred:
            _build(request, state)
        try:
            return state[self.name]
        except KeyError:
            # Deleted after it was set: werkzeug's plain attribute would be gone too.
            raise AttributeError(
                f"{type(request).__name__!r} object has no attribute {self.name!r}",
                name=self.name,
                obj=request,
            ) from None


# NOTE: set after the class so the attributes keep werkzeug's declared types for mypy.
for _name in DEFERRED:
    setattr(LazyRequest, _name, _Deferred(_name))
del _name
