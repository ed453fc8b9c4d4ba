"""Settings: declared once, checked once in App(), read-only afterwards, still a mapping."""

from __future__ import annotations

import dataclasses

import pytest

from funapi_sync import App
from funapi_sync.pool import PoolSettings
from funapi_sync.settings import Settings


def test_settings_read_as_a_mapping_with_every_default():
    app = App()
    settings = app.settings
    assert settings["debug"] is False
    # The backend's name is resolved to the backend object when the app is made.
    assert settings["background_backend"] is app.background
    assert dict(settings) == {
        "background_backend": app.background,
        "debug": False,
        "max_body_size": 1024 * 1024,
        "background_workers": 4,
        "background_queue_size": 1024,
        "background_slow_warning": 30.0,
        "background_shutdown_timeout": 25.0,
        "background_submit_timeout": 10.0,
        "background_status_size": 10000,
        "task_tracing": "child",
        "openapi_url": "/openapi.json",
        "docs_url": "/docs",
        "json_default": None,
    }
    assert settings.get("nope") is None
    with pytest.raises(KeyError):
        settings["nope"]


def test_assigning_a_setting_after_construction_names_the_fix():
    app = App()
    with pytest.raises(TypeError) as info:
        app.settings["debug"] = True  # type: ignore[index]
    assert str(info.value) == (
        "app.settings is read-only: settings are checked once, when the app is made;"
        " pass debug=True to App(...) instead"
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        app.settings.debug = True  # type: ignore[misc]
    with pytest.raises(TypeError, match="leave 'debug' out of App"):
        del app.settings["debug"]  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        app.debug = True  # type: ignore[misc]
    assert app.debug is False


def test_the_pool_settings_are_derived_from_the_app_settings():
    settings = App(background_workers=2, background_slow_warning=1).settings
    assert settings.pool == PoolSettings(
        workers=2, queue_size=1024, slow_warning=1.0, shutdown_timeout=25.0
    )


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"background_slow_warning": -1}, ValueError, "background_slow_warning must be a"),
        ({"background_shutdown_timeout": "5"}, ValueError, "non-negative number of seconds"),
        ({"docs_url": "docs"}, ValueError, "docs_url must start with '/'"),
        ({"openapi_url": 1}, TypeError, "openapi_url must be a path such as '/docs', or None"),
    ],
)
def test_bad_values_fail_when_the_app_is_made(options, error, message):
    with pytest.raises(error, match=message):
        App(**options)


def test_settings_compare_by_value():
    assert Settings(debug=True) == Settings.from_options({"debug": True})
    assert Settings() != Settings(debug=True)
    assert len(Settings()) == len(Settings.names())
