"""Shared fixtures: a throwaway autosec store on the local PostgreSQL, and the shared corpus."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its configuration once, at import: point it at a throwaway home first.
if "AIRFLOW_HOME" not in os.environ:
    _airflow_home = tempfile.mkdtemp(prefix="autosec-airflow-home-")
    atexit.register(shutil.rmtree, _airflow_home, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = _airflow_home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = REPO_ROOT.parent / "shared" / "corpus"
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _database_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


@pytest.fixture(scope="session")
def postgres_available() -> None:
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is needed at {ADMIN_URL}: {exc}")


@pytest.fixture(scope="session")
def store_url(postgres_available: None) -> Iterator[str]:
    """A migrated autosec store in its own database, dropped after the session."""
    from autosec.store import db

    name = f"autosec_test_{os.getpid()}_{secrets.token_hex(3)}"
    db.create_database(ADMIN_URL, name)
    url = _database_url(name)
    db.upgrade(url)
    yield url
    db.drop_database(ADMIN_URL, name)


@pytest.fixture
def conn(store_url: str):
    """A connection to an emptied store."""
    from autosec.store import db

    with db.connect(store_url) as connection:
        tables = [
            r[0]
            for r in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'autosec_alembic_version'"
            )
        ]
        connection.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
        connection.commit()
        yield connection


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS
