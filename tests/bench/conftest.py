"""Benchmark fixtures: the size to run at and a throwaway store of its own.

Benchmarks run only when this directory is named on the command line (``make bench``), never
as part of a plain ``pytest`` run, even one that clears the default ``--ignore``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parent
SIZE_VARIABLE = "AUTOSEC_BENCH_FINDINGS"
DEFAULT_SIZE = 200_000
ADMIN_URL = os.environ.get(
    "AUTOSEC_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _named_on_command_line(config: pytest.Config) -> bool:
    """True when an argument is this directory, something inside it, or a node id in it."""
    root = config.invocation_params.dir
    for arg in config.args:
        path = (root / arg.split("::", 1)[0]).resolve()
        if path == BENCH_DIR or BENCH_DIR in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.parent == BENCH_DIR and not _named_on_command_line(config):
        return True
    return None


def bench_size() -> int:
    """How many findings pass 1 writes, from ``AUTOSEC_BENCH_FINDINGS``."""
    raw = os.environ.get(SIZE_VARIABLE, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise pytest.UsageError(
            f"{SIZE_VARIABLE}={os.environ[SIZE_VARIABLE]!r} is not a whole number of findings"
        ) from None
    if size < 100:
        raise pytest.UsageError(
            f"{SIZE_VARIABLE}={size} is too small: at least 100 findings, so 5% is not empty"
        )
    return size


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A hang guard that grows with the size (about 2 ms a finding), never a timing check."""
    seconds = max(900, bench_size() // 500)
    for item in items:
        if BENCH_DIR in item.path.parents:
            item.add_marker(pytest.mark.timeout(seconds))


@pytest.fixture(scope="session")
def bench_findings() -> int:
    return bench_size()


@pytest.fixture(scope="session")
def bench_store_url(postgres_available: None) -> Iterator[str]:
    """A migrated autosec store in a database of its own, dropped when the benchmark ends."""
    from autosec.store import db

    name = f"autosec_bench_{os.getpid()}_{secrets.token_hex(3)}"
    db.create_database(ADMIN_URL, name)
    try:
        url = ADMIN_URL.rpartition("/")[0] + "/" + name
        db.upgrade(url)
        yield url
    finally:
        db.drop_database(ADMIN_URL, name)
