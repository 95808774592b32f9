"""A database of its own for each PostgreSQL test, on the session's embedded server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg


def with_database(url: str, name: str) -> str:
    """The same server and user, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def new_database(server_url: str) -> str:
    """A new empty database on the server, its URL; it lives as long as the session's server."""
    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server (dropped afterwards): tests never see each other's rows."""
    url = new_database(server_url)
    try:
        yield url
    finally:
        from handrail.intel.backends import close_shared

        close_shared(url)  # pools a worker context opened on it
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
