"""Event store fixtures: every test that asks for `event_store_env` (or `app`) runs on SQLite and PostgreSQL.

SQLite gets a fresh file under tmp_path. PostgreSQL gets a fresh schema per test, named with a
prefix unique to this pytest session, so parallel or repeated runs never collide and each test
starts from an empty store on both backends. Unreachable PostgreSQL skips its tests locally and
fails them on CI (CI=true), where a missing database must not pass silently.
"""
from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tasktrail.application import TaskTrail

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_DBNAME = "test"
POSTGRES_USER = "postgres"
POSTGRES_PASSWORD = ""  # trust auth; eventsourcing accepts "" (it only rejects a missing key)


def _connect() -> psycopg.Connection:
    return psycopg.connect(
        host=POSTGRES_HOST,
        port=POSTGRES_PORT,
        dbname=POSTGRES_DBNAME,
        user=POSTGRES_USER,
        password=POSTGRES_PASSWORD,
        connect_timeout=3,
        autocommit=True,
    )


class _SchemaFactory:
    """Creates uniquely named schemas (one per test) and drops them again."""

    def __init__(self) -> None:
        self.prefix = f"tasktrail_test_{uuid.uuid4().hex[:12]}_"
        self._numbers = itertools.count(1)

    def create(self) -> str:
        name = f"{self.prefix}{next(self._numbers)}"
        with _connect() as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        return name

    def drop(self, name: str) -> None:
        with _connect() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))

    def drop_leftovers(self) -> None:
        with _connect() as conn:
            rows = conn.execute(
                "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (self.prefix,)
            ).fetchall()
            for (name,) in rows:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def postgres_schemas() -> Iterator[_SchemaFactory]:
    """Checks once per session that PostgreSQL answers; skips (or, on CI, fails) when it does not."""
    try:
        with _connect() as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        reason = f"PostgreSQL not reachable on {POSTGRES_HOST}:{POSTGRES_PORT}: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    factory = _SchemaFactory()
    yield factory
    factory.drop_leftovers()


@pytest.fixture
def postgres_schema(postgres_schemas: _SchemaFactory) -> Iterator[str]:
    name = postgres_schemas.create()
    yield name
    postgres_schemas.drop(name)


def _sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "events.sqlite"),
        "AGGREGATE_CACHE_MAXSIZE": "10000",
    }


def _postgres_env(schema: str) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": POSTGRES_DBNAME,
        "POSTGRES_HOST": POSTGRES_HOST,
        "POSTGRES_PORT": str(POSTGRES_PORT),
        "POSTGRES_USER": POSTGRES_USER,
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
        "POSTGRES_SCHEMA": schema,
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "AGGREGATE_CACHE_MAXSIZE": "10000",
    }


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def event_store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """eventsourcing settings for a fresh, empty event store of the parametrised kind.

    The values override os.environ (Application merges os.environ first, then this dict).
    """
    if request.param == "sqlite":
        return _sqlite_env(tmp_path)
    return _postgres_env(request.getfixturevalue("postgres_schema"))


@pytest.fixture
def app(event_store_env: dict[str, str]) -> Iterator[TaskTrail]:
    application = TaskTrail(event_store_env)
    try:
        yield application
    finally:
        application.close()
