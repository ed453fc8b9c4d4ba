"""The public surface type-checks: a user's module using it passes ``mypy --strict``."""

from __future__ import annotations

from pathlib import Path

import pytest

import funapi_sync

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[1]

#: The names a user imports from funapi_sync (SPEC §2); each is used in USER_MODULE.
PUBLIC_NAMES = [
    "App",
    "BackgroundTasks",
    "Depends",
    "File",
    "HTTPException",
    "Input",
    "Router",
    "Schema",
    "TaskHandle",
    "Templates",
    "ValidationError",
    "current_task",
]

USER_MODULE = """
from __future__ import annotations

from typing import Any

from funapi_sync import {names}


class User:
    def __init__(self, name: str) -> None:
        self.name = name


def current_user(input: Input) -> User:
    token = input.headers.get("Authorization")
    if token is None:
        raise HTTPException(401, headers={{"WWW-Authenticate": "Bearer"}})
    return User(token)


app = App()
router = Router(prefix="/api")


@router.post("/users/<int:user_id>")
def show(
    input: Input, *, background: BackgroundTasks, user: User = Depends(current_user)
) -> dict[str, Any]:
    user_id: int = input.path["user_id"]
    page = input.query.get("page")
    handle: TaskHandle = background.add_task(print, user.name)
    task_id: str = handle.id
    running = current_task()
    assert running is None or isinstance(running.id, str)
    if not input.body:
        raise ValidationError([{{"loc": ["body"], "msg": "empty", "type": "missing"}}])
    return {{"id": user_id, "me": user.name, "page": page, "body": input.body, "task": task_id}}


app.include_router(router)
_unused: tuple[Any, ...] = (Schema, Templates, File)
"""


MISTAKE_MODULE = """
from funapi_sync import Input


def handler(input: Input) -> str:
    return input.path
"""


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One mypy --strict run over both modules (it takes seconds; run it once)."""
    tmp_path = tmp_path_factory.mktemp("typing")
    (tmp_path / "user_module.py").write_text(USER_MODULE.format(names=", ".join(PUBLIC_NAMES)))
    (tmp_path / "mistake_module.py").write_text(MISTAKE_MODULE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MYPYPATH", str(ROOT))
        out, err, _status = mypy_api.run(
            [
                "--strict",
                "--no-incremental",
                "--cache-dir",
                str(tmp_path / "cache"),
                "--config-file",
                "",
                str(tmp_path / "user_module.py"),
                str(tmp_path / "mistake_module.py"),
            ]
        )
    return out + err


def test_public_names_are_exactly_the_spec_surface():
    assert sorted(funapi_sync.__all__) == sorted([*PUBLIC_NAMES, "__version__"])


def test_a_user_module_using_the_surface_passes_mypy_strict(mypy_output):
    assert "user_module.py" not in mypy_output, mypy_output


def test_input_is_typed_precisely_enough_to_catch_a_mistake(mypy_output):
    (line,) = [line for line in mypy_output.splitlines() if "mistake_module.py" in line]
    assert line.endswith(
        'error: Incompatible return value type (got "dict[str, Any]", expected "str")'
        "  [return-value]"
    )
