"""The Importer contract: a report another tool wrote -> findings, without running anything.

An importer is pure: it reads a byte stream, never resolves entities, fetches references or
executes anything from its input. Large reports are streamed. A UTF-8 byte order mark and CRLF
line ends are tolerated; anything malformed raises ``ImportFormatError`` naming the file and
the position, so the person who pushed the report can find the problem.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, ClassVar

from autosec.domain.models import Location, Observation, Severity

IMPORT_PREFIX = "import:"
UTF8_BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 64 * 1024


class ImportFormatError(ValueError):
    """A report that cannot be read: names the file, the position and the problem."""

    def __init__(self, filename: str, problem: str, position: str | None = None) -> None:
        self.filename = filename
        self.problem = problem
        self.position = position
        where = f" at {position}" if position else ""
        super().__init__(f"{filename}{where}: {problem}")


@dataclass(frozen=True)
class ImportedFinding:
    """One finding as the report states it, before autosec knows which asset it belongs to.

    ``target`` is what the tool says it scanned (a host, an image, a repository); the import
    stage maps it to an inventory asset unless the person importing names the asset.
    """

    rule_id: str
    title: str
    severity: Severity
    location: Location
    target: str | None = None
    description: str = ""
    cvss_vector: str | None = None
    cvss_score: float | None = None
    cve_ids: tuple[str, ...] = ()
    cwe: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_observation(self, asset_id: str, engine: str) -> Observation:
        return Observation(
            asset_id=asset_id,
            engine=engine,
            rule_id=self.rule_id,
            title=self.title,
            severity=self.severity,
            location=self.location,
            description=self.description,
            cvss_vector=self.cvss_vector,
            cvss_score=self.cvss_score,
            cve_ids=self.cve_ids,
            cwe=self.cwe,
            evidence=self.evidence,
        )


class Importer(abc.ABC):
    """``name`` is the registry key and the ``--format`` value; the module is its snake_case."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abc.abstractmethod
    def sniff(self, head: bytes) -> bool:
        """Whether the first bytes of a file (BOM already stripped) look like this format."""

    @abc.abstractmethod
    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        """Stream findings out of the report; ``filename`` is only used in error messages."""

    @property
    def engine_name(self) -> str:
        """How scan runs, findings and the coverage map name what this importer ingested."""
        return f"{IMPORT_PREFIX}{self.name}"

    def covers(self, rule_id: str, location: Location, scope: Any) -> bool:
        """A newer report of the same tool about the same asset speaks for all its findings.

        So reimporting a report without one finding closes exactly that finding, and a report
        from another tool closes nothing of this one's.
        """
        return True


class CountingReader(io.RawIOBase):
    """Wraps a binary stream and counts the bytes handed out, to name a position on error."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.offset += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.offset += len(data)
        return data


def skip_bom(stream: BinaryIO) -> BinaryIO:
    """Return a stream positioned after a UTF-8 BOM, if the file starts with one."""
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    if buffered.peek(3)[:3] == UTF8_BOM:
        buffered.read(3)
    return buffered


def head_of(data: bytes) -> bytes:
    """The sniffable start of a file: without BOM, leading whitespace kept out."""
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM) :]
    return data.lstrip()
