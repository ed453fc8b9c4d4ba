"""File: an uploaded file is a werkzeug FileStorage; anything else in its place is a 422."""

from __future__ import annotations

import hashlib
import io

import pytest
from marshmallow import fields
from werkzeug.datastructures import FileStorage

from funapi_sync import App, File, Schema

NOT_A_FILE = "Not a file; send multipart/form-data with a file part here."
Upload = Schema.define("Upload", file=File(required=True), note=fields.String())


def upload_app(**settings) -> App:
    app = App(**settings)

    @app.post("/uploads", body=Upload)
    def upload(input):
        stored = input.body["file"]
        assert isinstance(stored, FileStorage)
        data = stored.read()
        return {
            "filename": stored.filename,
            "content_type": stored.mimetype,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "note": input.body.get("note"),
        }

    return app


def test_a_multipart_upload_arrives_as_a_filestorage():
    client = upload_app().test_client()
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    response = client.post(
        "/uploads",
        data={"file": (io.BytesIO(data), "cat.png", "image/png"), "note": "a cat"},
    )
    assert response.status_code == 200
    assert response.json == {
        "filename": "cat.png",
        "content_type": "image/png",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "note": "a cat",
    }


@pytest.mark.parametrize(
    ("send", "msg"),
    [
        (
            {"json": {"file": "aGVsbG8="}},
            "Not a file; send multipart/form-data with a file part here.",
        ),
        (
            {"data": {"file": "just text"}},
            "Not a file; send multipart/form-data with a file part here.",
        ),
        (
            {"data": {"file": (io.BytesIO(b""), "")}, "content_type": "multipart/form-data"},
            "No file was chosen.",
        ),
    ],
    ids=["json-string", "form-value", "empty-file-input"],
)
def test_anything_but_a_file_is_a_422_on_the_field(send, msg):
    response = upload_app().test_client().post("/uploads", **send)
    assert response.status_code == 422
    assert response.json == {
        "detail": [{"loc": ["body", "file"], "msg": msg, "type": "value_error"}]
    }


def test_a_missing_file_is_a_422_missing():
    response = upload_app().test_client().post("/uploads", data={"note": "no file"})
    assert response.status_code == 422
    assert response.json["detail"] == [
        {"loc": ["body", "file"], "msg": "Missing data for required field.", "type": "missing"}
    ]


def test_an_upload_over_max_body_size_is_a_413_and_the_handler_never_runs():
    client = upload_app(max_body_size=1000).test_client()
    response = client.post("/uploads", data={"file": (io.BytesIO(b"x" * 5000), "big.bin")})
    assert response.status_code == 413
    assert "1000-byte limit" in response.json["detail"]


def test_max_size_and_content_types_are_checked_per_file(app):
    Avatar = Schema.define(
        "Avatar", image=File(required=True, max_size=100, content_types=["image/*"])
    )

    @app.post("/avatar", body=Avatar)
    def avatar(input):
        return {"size": len(input.body["image"].read())}

    client = app.test_client()
    ok = client.post("/avatar", data={"image": (io.BytesIO(b"x" * 100), "a.png", "image/png")})
    assert ok.json == {"size": 100}
    big = client.post("/avatar", data={"image": (io.BytesIO(b"x" * 101), "a.png", "image/png")})
    assert big.status_code == 422
    assert big.json["detail"][0]["msg"] == "File is larger than the 100-byte limit."
    text = client.post("/avatar", data={"image": (io.BytesIO(b"x"), "a.txt", "text/plain")})
    assert text.status_code == 422
    assert text.json["detail"][0]["msg"] == "File type 'text/plain' is not one of image/*."


def test_file_options_are_checked_when_the_field_is_made():
    with pytest.raises(ValueError, match=r"File\(max_size=...\) must be a non-negative int"):
        File(max_size=-1)
    with pytest.raises(TypeError, match=r"takes a list such as \['image/png'\], not a str"):
        File(content_types="image/png")


def test_several_files_under_one_name_with_a_list_of_files(app):
    Photos = Schema.define("Photos", photos=fields.List(File(), required=True))

    @app.post("/photos", body=Photos)
    def photos(input):
        return [upload.filename for upload in input.body["photos"]]

    response = app.test_client().post(
        "/photos",
        data={"photos": [(io.BytesIO(b"a"), "a.jpg"), (io.BytesIO(b"b"), "b.jpg")]},
    )
    assert response.json == ["a.jpg", "b.jpg"]


def test_a_background_task_processes_the_saved_file_by_path(app, tmp_path):
    digests = {}

    def digest(path):
        digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()

    @app.post("/uploads", body=Upload, status_code=202)
    def upload(input, *, background):
        stored = input.body["file"]
        path = tmp_path / "upload-1.bin"
        stored.save(path)
        background.add_task(digest, path)
        return {"saved": path.name}

    data = b"y" * 300_000
    response = app.test_client().post("/uploads", data={"file": (io.BytesIO(data), "y.bin")})
    assert response.status_code == 202
    # The test client returns after the request's tasks ran.
    assert digests == {"upload-1.bin": hashlib.sha256(data).hexdigest()}


def test_a_file_field_in_a_response_schema_is_refused_at_decoration(app):
    with pytest.raises(
        TypeError, match=r"upload\(\) at POST /uploads: response_schema= has a File"
    ):

        @app.post("/uploads", body=Upload, response_schema=Upload)
        def upload(input):
            return input.body


def test_file_is_part_of_the_package_surface():
    import funapi_sync

    assert "File" in funapi_sync.__all__
    assert funapi_sync.File is File


def test_a_hand_made_upload_on_an_unseekable_stream_is_sized_by_its_length():
    class Pipe(io.RawIOBase):
        def readable(self):
            return True

        def seekable(self):
            return False

        def tell(self):
            raise OSError("unseekable")

    upload = FileStorage(stream=Pipe(), filename="p.bin", content_length=500)
    Big = Schema.define("Big", file=File(max_size=100))
    errors = Big().validate({"file": upload})
    assert errors == {"file": ["File is larger than the 100-byte limit."]}
