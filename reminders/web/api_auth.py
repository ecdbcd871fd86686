"""Who may call the API: `Authorization: Bearer <token>`, a token made by `reminders token create`."""
from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import g, request
from sqlalchemy import select

from reminders.accounts import hash_token
from reminders.models import ApiToken
from reminders.web.api_requests import json_error
from reminders.web.context import db, request_now

TOKEN_USE_GRANULARITY = timedelta(minutes=1)


def require_token(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("send an API token as 'Authorization: Bearer <token>' (create one with `reminders token create`)")
        row = db().scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token.strip())))
        if row is None or row.revoked_at is not None:
            return _unauthorized("the API token is not valid or has been revoked")
        g.api_token_name = row.name
        now = request_now()
        if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_GRANULARITY:
            row.last_used_at = now  # written at most once a minute per token
            db().commit()
        return view(*args, **kwargs)

    return wrapped


def _unauthorized(message: str):
    response = json_error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="clinic-reminders"'
    return response
