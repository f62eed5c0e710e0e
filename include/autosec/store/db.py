"""Connections and migrations for autosec's own PostgreSQL store.

Inside Airflow the connection comes from the ``autosec_db`` connection (see
``autosec.airflow.hooks``); outside it from a URL (``AUTOSEC_DATABASE_URL``).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

Connection = psycopg.Connection


def connect(url: str) -> psycopg.Connection:
    """A new connection; the caller owns it (use it as a context manager)."""
    return psycopg.connect(_libpq_url(url))


def unreachable(url: str, timeout: int = 5) -> str | None:
    """Why the server at ``url`` cannot be reached, or None when it can."""
    try:
        psycopg.connect(_libpq_url(url), connect_timeout=timeout).close()
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    return None


def _libpq_url(url: str) -> str:
    """Accept SQLAlchemy-style URLs (``postgresql+psycopg://``) as well as libpq ones."""
    scheme, sep, rest = url.partition("://")
    if sep and "+" in scheme:
        return f"{scheme.split('+', 1)[0]}://{rest}"
    return url


def sqlalchemy_url(url: str) -> str:
    _, sep, rest = _libpq_url(url).partition("://")
    if not sep:
        params = conninfo_to_dict(url)
        return "postgresql+psycopg:///?" + make_conninfo(**params).replace(" ", "&")
    return f"postgresql+psycopg://{rest}"


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the store schema to ``revision`` with Alembic."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    command.upgrade(config, revision)


def downgrade(url: str, revision: str) -> None:
    """Take the store schema back to ``revision`` with Alembic (to undo a release)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    command.downgrade(config, revision)


def current_revision(conn: psycopg.Connection) -> str | None:
    row = conn.execute(
        "SELECT version_num FROM autosec_alembic_version LIMIT 1"
        if _has_table(conn, "autosec_alembic_version")
        else "SELECT NULL"
    ).fetchone()
    return row[0] if row else None


def _has_table(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def create_database(admin_url: str, name: str) -> None:
    """Create database ``name`` if missing (used by the demo and the tests)."""
    from psycopg import sql

    with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    from psycopg import sql

    with psycopg.connect(_libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def create_schema(url: str, schema: str) -> None:
    from psycopg import sql

    with connect(url) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def drop_schema(url: str, schema: str) -> None:
    from psycopg import sql

    with connect(url) as admin:
        admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def schemas_named(url: str, prefix: str) -> list[str]:
    """Schemas whose name starts with ``prefix``, sorted."""
    with connect(url) as admin:
        rows = admin.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname::text, %s) "
            "ORDER BY nspname",
            (prefix,),
        ).fetchall()
    return [r[0] for r in rows]
