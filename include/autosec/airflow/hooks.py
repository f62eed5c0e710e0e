"""autosec's store and object storage as Airflow sees them: the ``autosec_db`` connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

STORE_CONN_ID = "autosec_db"


@contextmanager
def store_connection(conn_id: str = STORE_CONN_ID) -> Iterator[psycopg.Connection]:
    """A psycopg connection from the Airflow connection; committed on success, else rolled back."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    conn = PostgresHook(postgres_conn_id=conn_id).get_conn()
    try:
        yield conn
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


async def async_store_dsn(conn_id: str = STORE_CONN_ID) -> str:
    """A libpq DSN for async code (triggers), read without blocking the event loop."""
    from airflow.sdk import BaseHook
    from psycopg.conninfo import make_conninfo

    connection = await BaseHook.aget_connection(conn_id)
    return make_conninfo(
        host=connection.host or "",
        port=connection.port or 5432,
        user=connection.login or "",
        password=connection.password or "",
        dbname=connection.schema or "",
    )


class ObjectStorageBlobStore:
    """Evidence and reports written through Airflow's ObjectStoragePath (file, S3, GCS)."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def put(self, relative_path: str, data: bytes):
        from airflow.sdk import ObjectStoragePath

        from autosec.stages.blobs import StoredBlob, safe_relative, sha256_hex

        target = ObjectStoragePath(f"{self.base}/{safe_relative(relative_path)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as handle:
            handle.write(data)
        return StoredBlob(str(target), sha256_hex(data), len(data))

    def get(self, uri: str) -> bytes:
        from airflow.sdk import ObjectStoragePath

        with ObjectStoragePath(uri).open("rb") as handle:
            return handle.read()
