"""Templates: layouts, partials, escaping, and template names that cannot leave the directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jinja2 import TemplateNotFound, TemplateSyntaxError
from markupsafe import Markup

from funapi_sync import App, Templates
from funapi_sync.templating import TemplateResponseError


@pytest.fixture
def tdir(tmp_path: Path) -> Path:
    """A templates directory with a layout, pages and a partial, and a secret beside it."""
    root = tmp_path / "templates"
    (root / "partials").mkdir(parents=True)
    (root / "base.html").write_text(
        "<html><title>{{ title }}</title><main>{{ content }}</main></html>"
    )
    (root / "plain.html").write_text("<div class=plain>{{ content }}</div>")
    (root / "page.html").write_text("<h1>{{ title }}</h1><p>{{ name }}</p>")
    (root / "list.html").write_text(
        "<ul>{% for item in items %}{% include 'partials/item.html' %}{% endfor %}</ul>"
    )
    (root / "partials" / "item.html").write_text("<li>{{ item }}</li>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    return root


def test_response_is_html_with_length_and_status(tdir: Path) -> None:
    templates = Templates(tdir)
    response = templates.response(
        "page.html", status=201, headers={"X-Extra": "1"}, title="Hi", name="Ann"
    )
    assert response.status_code == 201
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["X-Extra"] == "1"
    assert response.get_data() == b"<h1>Hi</h1><p>Ann</p>"
    assert response.headers["Content-Length"] == str(len(response.get_data()))


def test_name_is_positional_only_so_a_context_variable_may_be_called_name(tdir: Path) -> None:
    assert Templates(tdir).render("page.html", title="T", name="Bob") == "<h1>T</h1><p>Bob</p>"


def test_layout_receives_the_page_as_safe_content_and_the_same_context(tdir: Path) -> None:
    templates = Templates(tdir, layout="base.html")
    html = templates.render("page.html", title="Home", name="<b>x</b>")
    assert html == (
        "<html><title>Home</title><main><h1>Home</h1><p>&lt;b&gt;x&lt;/b&gt;</p></main></html>"
    )


def test_layout_false_or_none_renders_the_page_alone(tdir: Path) -> None:
    templates = Templates(tdir, layout="base.html")
    assert templates.render("page.html", layout=False, title="A", name="B") == "<h1>A</h1><p>B</p>"
    assert templates.render("page.html", layout=None, title="A", name="B") == "<h1>A</h1><p>B</p>"


def test_layout_per_call_overrides_the_default(tdir: Path) -> None:
    templates = Templates(tdir, layout="base.html")
    html = templates.render("page.html", layout="plain.html", title="A", name="B")
    assert html == "<div class=plain><h1>A</h1><p>B</p></div>"


def test_with_layout_returns_a_copy_and_leaves_the_original(tdir: Path) -> None:
    templates = Templates(tdir, layout="base.html")
    plain = templates.with_layout("plain.html")
    bare = templates.with_layout(None)
    assert plain is not templates
    assert plain.env is templates.env
    assert plain.render("page.html", title="A", name="B").startswith("<div class=plain>")
    assert bare.render("page.html", title="A", name="B") == "<h1>A</h1><p>B</p>"
    assert templates.render("page.html", title="A", name="B").startswith("<html>")


def test_include_renders_partials_with_the_loop_context(tdir: Path) -> None:
    html = Templates(tdir).render("list.html", items=["a", "<script>"])
    assert html == "<ul><li>a</li><li>&lt;script&gt;</li></ul>"


def test_user_input_is_escaped_but_markup_is_not(tdir: Path) -> None:
    templates = Templates(tdir)
    attack = "<script>alert('x')</script>"
    html = templates.render("page.html", title="t", name=attack)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    trusted = templates.render("page.html", title="t", name=Markup("<em>ok</em>"))
    assert "<p><em>ok</em></p>" in trusted


def test_templates_are_autoescaped_whatever_the_file_extension(tdir: Path) -> None:
    (tdir / "note.txt").write_text("{{ v }}")
    assert Templates(tdir).render("note.txt", v="<b>") == "&lt;b&gt;"


def test_content_variable_with_a_layout_is_refused_with_the_fix(tdir: Path) -> None:
    templates = Templates(tdir, layout="base.html")
    with pytest.raises(ValueError, match=r"'content' would be hidden by the layout") as info:
        templates.render("page.html", content="x")
    assert "pass layout=False" in str(info.value)
    assert templates.render("plain.html", layout=False, content="x") == "<div class=plain>x</div>"


def test_missing_template_error_names_the_template_and_the_directory(tdir: Path) -> None:
    with pytest.raises(TemplateNotFound) as info:
        Templates(tdir).render("nope.html")
    assert info.value.name == "nope.html"
    assert str(info.value) == f"template 'nope.html' not found in {tdir}"


def test_response_for_a_missing_template_is_a_500_logged_in_one_line(tdir, caplog_funapi):
    with pytest.raises(TemplateResponseError) as info:
        Templates(tdir).response("pgae.html")
    assert (info.value.status_code, info.value.name) == (500, "pgae.html")
    message = f"template 'pgae.html' not found in {tdir}; did you mean 'page.html'?"
    assert str(info.value) == message
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog_funapi.records] == [
        ("ERROR", message, None)
    ]


@pytest.mark.parametrize(
    ("name", "logged"),
    [
        ("pgae.html", "template 'pgae.html' not found in {tdir}; did you mean 'page.html'?"),
        ("../secret.txt", "template name '../secret.txt' points outside the templates directory"),
        ("dynamic.html", "cannot render template 'dynamic.html': template 'partials/gone.html'"),
    ],
    ids=["missing", "refused", "missing-dynamic-include"],
)
def test_a_handler_rendering_a_bad_template_name_is_a_500_with_one_log_line_per_request(
    tdir, caplog_funapi, name, logged
) -> None:
    (tdir / "dynamic.html").write_text("{% include 'partials/' + which %}")
    app = App()
    templates = Templates(tdir)
    ran: list[str] = []

    @app.get("/page")
    def page(*, background):
        background.add_task(ran.append, "task")
        return templates.response(name, which="gone.html")

    client = app.test_client()
    for _ in range(2):
        response = client.get("/page")
        assert response.status_code == 500
        assert response.json == {"detail": "Internal Server Error"}

    records = [r for r in caplog_funapi.records if r.levelname == "ERROR"]
    assert len(records) == 2
    assert all(r.getMessage().startswith(logged.format(tdir=tdir)) for r in records)
    assert not [r for r in caplog_funapi.records if r.exc_info]
    assert ran == []


def test_a_syntax_error_in_any_template_fails_when_templates_are_created(tdir: Path) -> None:
    (tdir / "partials" / "bad.html").write_text("{% for x in items %}<li>{{ x }}</li>")
    with pytest.raises(TemplateSyntaxError) as info:
        Templates(tdir)
    assert info.value.name == "partials/bad.html"


def test_a_static_include_of_a_missing_file_fails_when_templates_are_created(tdir: Path) -> None:
    (tdir / "broken.html").write_text("{% extends 'bsae.html' %}")
    with pytest.raises(TemplateNotFound) as info:
        Templates(tdir)
    assert str(info.value) == (
        f"template 'bsae.html' not found in {tdir} (used by 'broken.html'); did you mean"
        " 'base.html'?"
    )


def test_dynamic_and_optional_includes_are_left_to_render_time(tdir: Path) -> None:
    (tdir / "optional.html").write_text("{% include 'maybe.html' ignore missing %}ok")
    (tdir / "dynamic.html").write_text("{% include 'partials/' + which %}")
    (tdir / "notes.md").write_text("{% not a template")  # not a template suffix: not parsed
    templates = Templates(tdir)
    assert templates.render("optional.html") == "ok"
    assert templates.render("dynamic.html", which="item.html", item="a") == "<li>a</li>"
    assert "notes.md" not in templates.names()
    assert templates.names()[:2] == ["base.html", "dynamic.html"]


def test_missing_include_names_the_partial(tdir: Path) -> None:
    (tdir / "broken.html").write_text("{% include 'partials/gone.html' %}")
    with pytest.raises(TemplateNotFound, match=r"'partials/gone.html' not found in"):
        Templates(tdir)


def test_missing_layout_fails_when_it_is_set_not_at_request_time(tdir: Path) -> None:
    with pytest.raises(TemplateNotFound, match=r"'layot.html' not found in"):
        Templates(tdir, layout="layot.html")
    with pytest.raises(TemplateNotFound, match=r"'missing.html' not found in"):
        Templates(tdir).with_layout("missing.html")


def test_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"Templates directory .*nowhere does not exist"):
        Templates(tmp_path / "nowhere")


@pytest.mark.parametrize(
    "name",
    [
        "../secret.txt",
        "partials/../../secret.txt",
        "./../secret.txt",
        "..\\secret.txt",
        "partials\\..\\..\\secret.txt",
        "secret.txt\x00.html",
    ],
)
def test_traversal_out_of_the_directory_is_refused(tdir: Path, name: str) -> None:
    templates = Templates(tdir)
    with pytest.raises(TemplateNotFound, match=r"points outside the templates directory") as info:
        templates.render(name)
    assert "use a relative path inside it" in str(info.value)


def test_absolute_paths_are_refused_even_inside_the_directory(tdir: Path) -> None:
    templates = Templates(tdir)
    for name in [str(tdir.parent / "secret.txt"), "/etc/passwd", str(tdir / "page.html")]:
        with pytest.raises(TemplateNotFound, match=r"points outside the templates directory"):
            templates.render(name)


@pytest.mark.parametrize(
    "name", ["%2e%2e/secret.txt", "%2E%2E%2Fsecret.txt", "..%2fsecret.txt", "%252e%252e/secret.txt"]
)
def test_url_encoded_names_are_not_decoded(tdir: Path, name: str) -> None:
    # NOTE: a template name is a path, never a URL: '%2e%2e' is a literal file name.
    with pytest.raises(TemplateNotFound, match=r"not found in"):
        Templates(tdir).render(name)


def test_include_cannot_escape_either(tdir: Path) -> None:
    (tdir / "sneaky.html").write_text("{% include '../secret.txt' %}")
    with pytest.raises(TemplateNotFound, match=r"points outside"):
        Templates(tdir).render("sneaky.html")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlink_out_of_the_directory_is_refused(tdir: Path) -> None:
    (tdir / "link.html").symlink_to(tdir.parent / "secret.txt")
    with pytest.raises(TemplateNotFound, match=r"outside the templates directory"):
        Templates(tdir).render("link.html")


def test_edited_template_is_reloaded(tdir: Path) -> None:
    templates = Templates(tdir)
    assert templates.render("partials/item.html", item="a") == "<li>a</li>"
    path = tdir / "partials" / "item.html"
    path.write_text("<li class=new>{{ item }}</li>")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert templates.render("partials/item.html", item="a") == "<li class=new>a</li>"


def test_handler_returns_the_response_and_its_background_tasks_still_run(tdir: Path) -> None:
    app = App()
    templates = Templates(tdir, layout="base.html")
    ran: list[str] = []

    @app.get("/hello/<name>")
    def hello(input, *, background):
        background.add_task(ran.append, input.path["name"])
        return templates.response("page.html", title="Hello", name=input.path["name"])

    response = app.test_client().get("/hello/<i>")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert b"<p>&lt;i&gt;</p>" in response.data
    assert ran == ["<i>"]


def test_names_skip_hidden_files_and_no_close_match_adds_no_hint(tdir: Path, caplog_funapi) -> None:
    (tdir / ".cache").mkdir()
    (tdir / ".cache" / "x.html").write_text("{% broken")  # hidden: neither parsed nor listed
    templates = Templates(tdir)
    assert ".cache/x.html" not in templates.names()
    with pytest.raises(TemplateResponseError) as info:
        templates.response("zzzzzzzz.txt")
    assert str(info.value) == f"template 'zzzzzzzz.txt' not found in {tdir}"
