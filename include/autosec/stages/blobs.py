"""Where evidence and reports are written: an injected store of bytes with sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname


@dataclass(frozen=True)
class StoredBlob:
    uri: str
    sha256: str
    size: int


class BlobStore(Protocol):
    def put(self, relative_path: str, data: bytes) -> StoredBlob: ...

    def get(self, uri: str) -> bytes: ...


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def safe_relative(relative_path: str) -> str:
    """Reject absolute paths and '..' so a blob can never land outside its store."""
    parts = [p for p in relative_path.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or relative_path.startswith("/"):
        raise ValueError(f"unsafe blob path {relative_path!r}")
    return "/".join(parts)


class LocalBlobStore:
    """A folder on the local disk; used outside Airflow (the CLI and the tests)."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    def put(self, relative_path: str, data: bytes) -> StoredBlob:
        target = self.base / safe_relative(relative_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return StoredBlob(target.resolve().as_uri(), sha256_hex(data), len(data))

    def get(self, uri: str) -> bytes:
        return Path(url2pathname(urlsplit(uri).path)).read_bytes()
