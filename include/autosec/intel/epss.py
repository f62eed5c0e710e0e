"""Read FIRST's daily EPSS scores (CSV, optionally gzipped), one row at a time.

The file starts with a comment line naming the model and the score date
(``#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z``), then the header
``cve,epss,percentile``, then about 300,000 rows. :class:`EpssReader` reads the two header lines
when opened and yields :class:`EpssScore` rows lazily, so a full file never sits in memory.
A malformed row raises :class:`EpssError` naming the file and the line.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

CVE_PATTERN = re.compile(r"^CVE-\d{4}-\d{4,19}$")
HEADER = ("cve", "epss", "percentile")


class EpssError(ValueError):
    """An EPSS file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class EpssScore:
    cve_id: str
    epss: float  # probability of exploitation activity in the next 30 days, 0..1
    percentile: float  # 0..1


class EpssReader:
    """``with EpssReader(path) as scores: for score in scores: ...``

    ``model_version`` and ``score_date`` come from the comment line (None when the file has
    none); duplicate CVEs are refused, since one of them would silently win in the store.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.model_version: str | None = None
        self.score_date: datetime | None = None
        self.rows = 0
        self._handle: IO[str] | None = None
        self._line = 0

    def __enter__(self) -> EpssReader:
        try:
            raw = self.path.open("rb")
        except OSError as exc:
            raise EpssError(f"{self.path}: cannot read: {exc.strerror or exc}") from exc
        binary: IO[bytes] = raw
        if raw.read(2) == b"\x1f\x8b":
            raw.seek(0)
            binary = gzip.GzipFile(fileobj=raw)
        else:
            raw.seek(0)
        self._handle = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        try:
            self._read_header()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _next_line(self) -> str | None:
        if self._handle is None:
            raise EpssError(f"{self.path}: the reader is not open")
        try:
            line = self._handle.readline()
        except (UnicodeDecodeError, OSError, EOFError, gzip.BadGzipFile) as exc:
            raise EpssError(f"{self.path}: line {self._line + 1}: cannot read: {exc}") from exc
        if not line:
            return None
        self._line += 1
        return line.rstrip("\r\n")

    def _read_header(self) -> None:
        line = self._next_line()
        if line is not None and line.startswith("#"):
            self._read_comment(line[1:])
            line = self._next_line()
        if line is None:
            raise EpssError(f"{self.path}: empty file (no 'cve,epss,percentile' header)")
        header = tuple(part.strip().lower() for part in line.split(","))
        if header != HEADER:
            raise EpssError(
                f"{self.path}: line {self._line}: expected the header 'cve,epss,percentile', "
                f"got {line[:80]!r}"
            )

    def _read_comment(self, text: str) -> None:
        for part in text.split(","):
            key, _, value = part.partition(":")
            key, value = key.strip(), value.strip()
            if key == "model_version" and value:
                self.model_version = value
            elif key == "score_date" and value:
                try:
                    parsed = datetime.fromisoformat(value)
                except ValueError:
                    raise EpssError(
                        f"{self.path}: line {self._line}: score_date {value!r} is not a timestamp"
                    ) from None
                self.score_date = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def __iter__(self) -> Iterator[EpssScore]:
        seen: set[str] = set()
        while (line := self._next_line()) is not None:
            if not line.strip():
                continue
            where = f"{self.path}: line {self._line}"
            try:
                (fields,) = csv.reader([line])
            except (csv.Error, ValueError) as exc:
                raise EpssError(f"{where}: malformed CSV: {exc}") from exc
            if len(fields) != 3:
                raise EpssError(f"{where}: expected 3 fields (cve,epss,percentile): {line[:80]!r}")
            cve_id = fields[0].strip()
            if not CVE_PATTERN.match(cve_id):
                raise EpssError(f"{where}: {cve_id!r} is not a CVE id")
            if cve_id in seen:
                raise EpssError(f"{where}: {cve_id} is listed twice")
            seen.add(cve_id)
            epss = _probability(fields[1], "epss", where)
            yield EpssScore(cve_id, epss, _probability(fields[2], "percentile", where))
            self.rows += 1


def _probability(text: str, name: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EpssError(f"{where}: {name} {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise EpssError(f"{where}: {name} {value} is outside 0..1")
    return value
