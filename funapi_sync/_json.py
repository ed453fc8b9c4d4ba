"""JSON on the wire, both ways: strict linear-time decoding, per-thread encoding."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
import math
import re
import sys
import threading
import uuid
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from .exceptions import ValidationError

# -- decoding a request body ----------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _invalid_json(msg: str) -> ValidationError:
    return ValidationError([{"loc": ["body"], "msg": msg, "type": "json_invalid"}])


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is out of range for a float")
    return value


# A \uD800-\uDFFF escape: half of a surrogate pair, or a lone one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# PERF: one decoder for the process; json.loads with options builds one per call.
# NOTE: strict UTF-8 (RFC 8259 §8.1), no NaN/Infinity, no float that overflows to inf.
_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


#: The deepest nesting of arrays and objects a request body may have.
MAX_JSON_DEPTH = 256
# NOTE: possessive, and a closing quote that may be missing, so that every '"' starts a
# match that never fails: a failing match retried from each quote of an unterminated
# string was quadratic in the body's size.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = tuple(1 if byte in b"[{" else -1 for byte in range(256))


def _too_deep(data: bytes) -> bool:
    # NOTE: a fixed limit, because the recursion limit the parser (and later the encoder
    # echoing the body) hits depends on how deep the server's stack already is. Only a
    # body with that many brackets at all pays for the scan, which is linear in its size.
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:
        return False
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0) > MAX_JSON_DEPTH


def parse_json(data: bytes) -> Any:
    """Parse strict JSON (no NaN/Infinity); any failure is a 422 ``json_invalid``."""
    try:
        if _too_deep(data):
            raise RecursionError
        payload = _decoder.decode(data.decode("utf-8"))
        if _SURROGATE_ESCAPE.search(data):
            # NOTE: json accepts a lone "\ud800", which no UTF-8 response can carry; a
            # request must not be able to turn its own echo into a 500.
            json.dumps(payload, ensure_ascii=False).encode()
        return payload
    except RecursionError:
        return_msg = "JSON is nested too deeply"
    except UnicodeEncodeError:
        return_msg = "JSON string holds a lone surrogate escape"
    except UnicodeDecodeError:
        return_msg = "JSON body is not valid UTF-8"
    except ValueError as exc:
        return_msg = _too_many_digits(exc) or f"JSON decode error: {exc}"
    raise _invalid_json(return_msg)


def _too_many_digits(exc: ValueError) -> str | None:
    # NOTE: Python refuses to parse an integer literal over sys.get_int_max_str_digits()
    # (CVE-2020-10735) with advice for the server's programmer, not for the client.
    if "integer string conversion" not in str(exc):
        return None
    return f"JSON number has more than {sys.get_int_max_str_digits()} digits"


# -- encoding a response --------------------------------------------------------------


class UnencodableError(TypeError):
    """A payload holds an object JSON cannot encode; the message names its type and the fix."""

    def __init__(self, what: str, fix: str) -> None:
        #: ``"an object of type Row"``: what the payload held.
        self.what = what
        #: What to write instead.
        self.fix = fix
        super().__init__(f"{what} is not JSON serializable; {fix}")


def json_default(obj: Any) -> Any:
    """Encode the types a JSON API returns besides JSON's own."""
    if isinstance(obj, datetime.datetime | datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, decimal.Decimal):
        # NOTE: a string keeps every digit (pydantic v2 does the same); a float would not.
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, datetime.timedelta):
        return obj.total_seconds()
    if isinstance(obj, bytes | bytearray):
        raise UnencodableError(
            "bytes",
            "JSON has no bytes type. Return a werkzeug Response(data, mimetype=...) to send"
            " raw bytes",
        )
    raise UnencodableError(
        f"an object of type {type(obj).__name__}",
        "convert it to a dict, list, str or number, or pass App(json_default=fn) with"
        " fn(obj) returning something JSON can encode (see docs/validation.md)",
    )


def chain_default(default: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``App(json_default=fn)``: ``fn`` first, then the built-in encodings.

    ``fn`` sees every object JSON cannot encode natively, so it may encode a datetime
    its own way; a ``TypeError`` it raises (``json.dumps(default=)``'s convention for
    "not mine") hands the object to :func:`json_default`.
    """

    def combined(obj: Any) -> Any:
        try:
            return default(obj)
        except UnencodableError:
            raise
        except TypeError:
            pass
        try:
            return json_default(obj)
        except UnencodableError as exc:
            raise UnencodableError(
                exc.what,
                f"App(json_default={getattr(default, '__qualname__', default)}) raised"
                " TypeError for it too; return a JSON-ready value for this type from it",
            ) from None

    return combined


_encoder = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=json_default
)

# PERF: JSONEncoder.encode builds a new C encoder on every call (its cycle markers are a
# fresh dict each time), about half the cost of encoding a small payload. One C encoder
# per thread, made with the same arguments encode() passes, gives the same bytes; the
# markers dict is the thread's own, because two threads may encode one shared constant
# at once, and it is cleared after a failure, which can leave entries behind.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)


def make_encoder(default: Callable[[Any], Any] = json_default) -> Callable[[Any], bytes]:
    """A function that serialises a payload as compact UTF-8 JSON with ``default``."""
    local = threading.local()
    fallback = json.JSONEncoder(
        ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=default
    )

    def thread_encoder() -> Callable[[Any, int], Any]:
        markers: dict[int, Any] = {}
        encoder = _c_make_encoder(  # type: ignore[misc]
            markers,
            default,
            json.encoder.encode_basestring,
            None,
            _encoder.key_separator,
            _encoder.item_separator,
            False,
            False,
            False,
        )
        local.markers = markers
        local.encoder = encoder
        return encoder  # type: ignore[no-any-return]

    def encode(payload: Any) -> bytes:
        """Serialise ``payload`` as compact UTF-8 JSON."""
        if _c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
            return fallback.encode(payload).encode()
        encoder = getattr(local, "encoder", None) or thread_encoder()
        try:
            return "".join(encoder(payload, 0)).encode()
        except BaseException:
            local.markers.clear()
            raise

    return encode


#: The encoder of an app without ``json_default`` (and of every built-in error body).
encode_json = make_encoder()
