"""A RealWorld-style ("Conduit") API: nested routers, Token auth, one error envelope.

Run it:  python examples/conduit.py       (gunicorn on http://127.0.0.1:3000)
    or:  gunicorn examples.conduit:app    (from the project root)

Every error the API answers, the routing 404 and 405 included, has RealWorld's shape
``{"errors": {"<field>": ["<message>"]}}``, declared once with
``exception_handler(..., schema=ErrorEnvelope)`` and documented so in /openapi.json.
Routers nest: ``/api`` holds ``/users``, ``/user``, ``/profiles`` and ``/articles``, and the
articles router holds ``/<slug>/comments``. State lives in memory (one process: run it with
one worker); a real app would keep it in a database.

    curl -X POST localhost:3000/api/users -H 'Content-Type: application/json' \\
         -d '{"user": {"username": "ada", "email": "ada@example.com", "password": "secret"}}'
    curl -X POST localhost:3000/api/articles -H 'Authorization: Token <token from above>' \\
         -H 'Content-Type: application/json' \\
         -d '{"article": {"title": "Hello", "description": "d", "body": "b"}}'
    curl localhost:3000/api/articles/hello
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from marshmallow import fields, validate

from funapi_sync import App, Depends, HTTPException, Router, Schema, ValidationError
from funapi_sync.security import HTTPBearer

ErrorEnvelope = Schema.define(
    "ErrorEnvelope",
    errors=fields.Dict(keys=fields.String(), values=fields.List(fields.String()), required=True),
)
NewUser = Schema.define(
    "NewUser",
    user=fields.Nested(
        Schema.define(
            "NewUserFields",
            username=fields.String(required=True, validate=Schema.filled),
            email=fields.Email(required=True),
            password=fields.String(required=True, validate=validate.Length(min=6)),
        ),
        required=True,
    ),
)
NewArticle = Schema.define(
    "NewArticle",
    article=fields.Nested(
        Schema.define(
            "NewArticleFields",
            title=fields.String(required=True, validate=Schema.filled),
            description=fields.String(required=True),
            body=fields.String(required=True),
            tagList=fields.List(fields.String(), load_default=list),
        ),
        required=True,
    ),
)
NewComment = Schema.define(
    "NewComment",
    comment=fields.Nested(
        Schema.define(
            "NewCommentFields", body=fields.String(required=True, validate=Schema.filled)
        ),
        required=True,
    ),
)


class Store:
    """The API's state, in memory and thread-safe (gunicorn's gthread worker)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users: dict[str, dict[str, Any]] = {}  # by username
        self.tokens: dict[str, str] = {}  # token -> username
        self.articles: dict[str, dict[str, Any]] = {}  # by slug
        self.comments: dict[str, list[dict[str, Any]]] = {}  # by article slug


store = Store()
token_auth = HTTPBearer(scheme="Token")

app = App(title="Conduit", version="1.0.0")


@app.exception_handler(HTTPException, schema=ErrorEnvelope)
def http_error(req, exc):
    return {"errors": {"body": [str(exc.detail)]}}, exc.status_code, exc.headers


@app.exception_handler(ValidationError, schema=ErrorEnvelope)
def invalid(req, exc):
    errors: dict[str, list[str]] = {}
    for error in exc.errors:
        where = ".".join(str(part) for part in error["loc"][1:]) or error["loc"][0]
        errors.setdefault(where, []).append(error["msg"])
    return {"errors": errors}, 422


def current_user(token: str = Depends(token_auth)) -> dict[str, Any]:
    """The user a ``Token`` credential belongs to, else 401."""
    username = store.tokens.get(token)
    if username is None:
        raise HTTPException(401, "Invalid token", headers={"WWW-Authenticate": "Token"})
    return store.users[username]


def _public(user: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    shown = {"username": user["username"], "email": user["email"], "bio": None, "image": None}
    return {**shown, "token": token} if token else shown


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "article"


def _article(slug: str) -> dict[str, Any]:
    article = store.articles.get(slug)
    if article is None:
        raise HTTPException(404, f"No article {slug!r}")
    return article


api = Router(prefix="/api", tags=["conduit"], responses={401: "Missing or invalid token"})
users = Router(prefix="/users")
articles = Router(prefix="/articles")
comments = Router(prefix="/<slug>/comments")


@users.post("", body=NewUser, status_code=201)
def register(input):
    """Register a user; the answer carries their token."""
    fields_ = input.body["user"]
    with store.lock:
        if fields_["username"] in store.users:
            raise ValidationError(
                [{"loc": ["body", "username"], "msg": "has already been taken", "type": "taken"}]
            )
        salt = secrets.token_hex(8)
        digest = hashlib.sha256((salt + fields_["password"]).encode()).hexdigest()
        user = {"username": fields_["username"], "email": fields_["email"], "pw": (salt, digest)}
        store.users[user["username"]] = user
        token = secrets.token_urlsafe(24)
        store.tokens[token] = user["username"]
    return {"user": _public(user, token)}


@api.get("/user", depends={"user": current_user})
def me(*, user):
    """The user the token belongs to."""
    return {"user": _public(user)}


@api.get("/profiles/<username>")
def profile(input):
    user = store.users.get(input.path["username"])
    if user is None:
        raise HTTPException(404, "No such profile")
    return {"profile": {"username": user["username"], "bio": None, "following": False}}


@articles.post("", body=NewArticle, status_code=201, depends={"user": current_user})
def create_article(input, *, user):
    fields_ = input.body["article"]
    now = datetime.now(UTC).isoformat()
    with store.lock:
        slug = base = _slug(fields_["title"])
        counter = 1
        while slug in store.articles:
            counter += 1
            slug = f"{base}-{counter}"
        article = {**fields_, "slug": slug, "author": user["username"], "createdAt": now}
        store.articles[slug] = article
        store.comments[slug] = []
    return {"article": article}


@articles.get("/<slug>")
def show_article(input):
    return {"article": _article(input.path["slug"])}


@articles.delete("/<slug>", status_code=204, depends={"user": current_user})
def delete_article(input, *, user):
    with store.lock:
        article = _article(input.path["slug"])
        if article["author"] != user["username"]:
            raise HTTPException(403, "Only the author may delete an article")
        del store.articles[article["slug"]]
        store.comments.pop(article["slug"], None)
    return None


@comments.post("", body=NewComment, status_code=201, depends={"user": current_user})
def add_comment(input, *, user):
    with store.lock:
        slug = _article(input.path["slug"])["slug"]
        comment = {"id": len(store.comments[slug]) + 1, "author": user["username"]}
        comment["body"] = input.body["comment"]["body"]
        store.comments[slug].append(comment)
    return {"comment": comment}


@comments.get("")
def list_comments(input):
    slug = _article(input.path["slug"])["slug"]
    return {"comments": list(store.comments[slug])}


articles.include_router(comments)
api.include_router(users)
api.include_router(articles)
app.include_router(api)


if __name__ == "__main__":
    from funapi_sync.server import gunicorn

    gunicorn.start(app, port=3000, workers=1)
