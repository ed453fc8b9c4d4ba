"""Internal: the statuses a handler returns literally (``return None, 204``), for OpenAPI.

The document cannot run a handler, but it can read it: each ``return payload, <status>``
(or ``(payload, <status>, headers)``) whose status is an int literal or ``HTTPStatus.X``
is a status the route answers. The route's own ``status_code`` is documented too, unless
it was left at 200 and no return of the handler can produce it (every return names
another status, and the body cannot fall off its end).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

__all__ = ["returned_statuses"]


def returned_statuses(handler: Callable[..., Any]) -> tuple[list[int], bool]:
    """Return ``(literal statuses in source order, whether a plain return may happen)``.

    Without readable source (a builtin, a lambda, code typed at a prompt), nothing is
    inferred: ``([], True)``.
    """
    function = _function_node(handler)
    if function is None:
        return [], True
    statuses: list[int] = []
    plain = not _ends_in_exit(function.body)
    for node in _returns(function):
        status = _literal_status(node.value)
        if status is None:
            plain = True
        elif status not in statuses:
            statuses.append(status)
    return statuses, plain


def _function_node(handler: Callable[..., Any]) -> ast.FunctionDef | None:
    try:
        source = textwrap.dedent(inspect.getsource(handler))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    name = getattr(handler, "__name__", None)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    return None


def _returns(function: ast.FunctionDef) -> Iterator[ast.Return]:
    """The function's own return statements (not those of functions nested in it)."""
    stack: list[ast.AST] = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _ends_in_exit(body: list[ast.stmt]) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, (ast.Return, ast.Raise)):
        return True
    if isinstance(last, ast.If):
        return _ends_in_exit(last.body) and _ends_in_exit(last.orelse)
    return False


def _literal_status(value: ast.expr | None) -> int | None:
    if not isinstance(value, ast.Tuple) or len(value.elts) not in (2, 3):
        return None
    status = value.elts[1]
    if isinstance(status, ast.Constant) and type(status.value) is int:
        return status.value if 100 <= status.value <= 599 else None
    if isinstance(status, ast.Attribute) and status.attr in HTTPStatus.__members__:
        owner = status.value
        if (isinstance(owner, ast.Name) and owner.id == "HTTPStatus") or (
            isinstance(owner, ast.Attribute) and owner.attr == "HTTPStatus"
        ):
            return HTTPStatus[status.attr].value
    return None
