"""The Importer contract: a report another tool wrote -> findings, without running anything.

An importer is pure: it reads a byte stream, never resolves entities, fetches references or
executes anything from its input. Large reports are streamed. A UTF-8 byte order mark and CRLF
line ends are tolerated; anything malformed raises ``ImportFormatError`` naming the file and
the position, so the person who pushed the report can find the problem.
"""

from __future__ import annotations

import abc
import contextlib
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, BinaryIO, ClassVar
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import ijson
from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser
from defusedxml.ElementTree import iterparse as safe_iterparse
from ijson.common import ObjectBuilder
from packageurl import PackageURL

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

    def source_tool(self, head: bytes) -> str | None:
        """For formats many tools write (SARIF): which tool wrote this report, from its start.

        Each tool's reports then close only that tool's findings: a Semgrep log must not
        close what CodeQL found.
        """
        return None

    def engine_name_for(self, head: bytes) -> str:
        tool = self.source_tool(head)
        if not tool:
            return self.engine_name
        slug = re.sub(r"[^a-z0-9._-]+", "-", tool.strip().lower()).strip("-")[:60]
        return f"{self.engine_name}:{slug}" if slug else self.engine_name

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


# ------------------------------------------------------------------------ streaming JSON


class _ChunkReader:
    """Hands ijson the stream chunk by chunk and keeps the last chunk, to locate a syntax error."""

    def __init__(self, stream: BinaryIO, offset: int) -> None:
        self._stream = stream
        self.offset = offset
        self.chunk = b""
        self.chunk_start = offset

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self.chunk, self.chunk_start = data, self.offset
            self.offset += len(data)
        return data


def _yajl_error_offset(message: str, reader: _ChunkReader) -> int | None:
    """The file offset a yajl error message points at, found by re-rendering its context line.

    yajl prints up to 30 bytes either side of the error with the error byte in column 40 and
    line ends shown as spaces; the only candidate offsets are those of the last chunk read.
    """
    lines = message.split("\n")
    arrows = [i for i, line in enumerate(lines) if line.endswith("(right here) ------^")]
    if not arrows or arrows[0] == 0:
        return None
    context = lines[arrows[0] - 1]
    if not context.strip():  # nothing left to read: the document ended too early
        return reader.offset
    chunk = reader.chunk.replace(b"\n", b" ").replace(b"\r", b" ")
    for offset in range(len(chunk) + 1):
        start = max(0, offset - 30)
        rendered = b" " * (40 - offset if offset < 30 else 10) + chunk[start : offset + 30]
        if rendered.decode("utf-8", "replace") == context:
            return reader.chunk_start + offset
    return None


def _json_problem(exc: Exception) -> str:
    first = str(exc).strip().splitlines()
    return f"malformed JSON ({first[0] if first else type(exc).__name__})"


def json_events(
    stream: BinaryIO, filename: str, *, multiple_values: bool = False
) -> Iterator[tuple[str, str, Any]]:
    """ijson parse events of a report, BOM skipped; a syntax error names its byte offset.

    The offset (from the start of the file, BOM included) is where the parser stopped: just
    after the token it could not accept (a stray string, a missing comma's neighbour), or the
    end of the file for a document cut short. Numbers come out as ``int`` or ``float`` (not
    ``Decimal``); an empty stream is an error at byte 0 like any other document that ends too
    early.
    """
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    bom = len(UTF8_BOM) if buffered.peek(3)[:3] == UTF8_BOM else 0
    buffered.read(bom)
    reader = _ChunkReader(buffered, bom)
    try:
        yield from ijson.parse(reader, use_float=True, multiple_values=multiple_values)
    except ijson.JSONError as exc:
        if reader.offset == bom:
            raise ImportFormatError(
                filename, "empty file: expected a JSON document", "byte 0"
            ) from None
        offset = _yajl_error_offset(str(exc), reader)
        where = f"byte {offset}" if offset is not None else f"byte {reader.offset} or before"
        raise ImportFormatError(filename, _json_problem(exc), where) from None


@dataclass(frozen=True)
class JsonHead:
    """What the start of a JSON document shows: its top-level kind and first object's members.

    ``members`` holds the first object (the document itself, or the first element of a
    top-level array), as far as the head reaches: scalars by value, arrays as ``list`` and
    objects as ``dict`` (the types, not contents), so a sniffer can tell ``"x": []`` from
    ``"x": null``.
    """

    kind: str
    members: Mapping[str, Any]


@lru_cache(maxsize=4)
def json_head(head: bytes) -> JsonHead | None:
    """Read the members of the first JSON value in a (possibly cut off) file start, or None.

    The head of a large file is cut mid-document; parsing stops quietly there. JSON Lines
    work too: only the first value is read. Cached (read-only result): the registry asks
    every sniffer about the same head in turn.
    """
    kind: str | None = None
    members: dict[str, Any] = {}
    object_prefix: str | None = None
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head), multiple_values=True):
            if kind is None:
                kind = {"start_map": "object", "start_array": "array"}.get(event, "scalar")
                if kind == "object":
                    object_prefix = ""
                elif kind == "scalar":
                    break
                continue
            if object_prefix is None:  # inside a top-level array, before its first element
                if prefix == "item" and event == "start_map":
                    object_prefix = "item"
                    continue
                break
            if prefix == object_prefix and event in ("end_map", "end_array"):
                break  # the first object is complete
            member_prefix = f"{object_prefix}." if object_prefix else ""
            if not prefix.startswith(member_prefix) or prefix == object_prefix:
                continue
            key = prefix[len(member_prefix) :]
            if "." in key or key in members:
                continue
            if event == "start_map":
                members[key] = dict
            elif event == "start_array":
                members[key] = list
            elif event not in ("end_map", "end_array", "map_key"):
                members[key] = value
    except ijson.JSONError:
        pass
    if kind is None:
        return None
    return JsonHead(kind=kind, members=MappingProxyType(members))


# ----------------------------------------------------------------------------- safe XML


_XML_PROLOG = re.compile(
    rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE(?:[^\[>]|\[.*?\])*>)", re.DOTALL | re.IGNORECASE
)
_XML_START_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)((?:[^>\"']|\"[^\"]*\"|'[^']*')*)>?")


_XML_NO_ELEMENTS = 3  # expat's XML_ERROR_NO_ELEMENTS: the input holds no element


@dataclass(frozen=True)
class XmlRoot:
    """The root start tag of an XML file: its name (with any prefix) and its attribute text."""

    tag: str
    attributes: str


def xml_root(head: bytes) -> XmlRoot | None:
    """The root element of an XML file start, past its declaration, comments and doctype."""
    position = 0
    while match := _XML_PROLOG.match(head, position):
        if match.end() == position:
            break
        position = match.end()
    start = _XML_START_TAG.match(
        head, position + len(head[position:]) - len(head[position:].lstrip())
    )
    if start is None:
        return None
    return XmlRoot(
        tag=start.group(1).decode("ascii", "replace"),
        attributes=start.group(2).decode("utf-8", "replace"),
    )


class _RecordingParser(DefusedXMLParser):
    """defusedxml's parser noting the line on which the root and chosen elements start.

    Only element starts pass through Python here; text and ends go straight to the C
    TreeBuilder, so the cost over a bare iterparse stays small. With ``bare_doctype`` a
    ``<!DOCTYPE name>`` is accepted (nmap writes one) but not one with an internal subset or
    an external identifier.
    """

    def __init__(self, record: frozenset[str], *, allow_doctype: bool, bare_doctype: bool) -> None:
        super().__init__(
            target=TreeBuilder(),
            forbid_dtd=not (allow_doctype or bare_doctype),
            forbid_entities=True,
            forbid_external=True,
        )
        self.expat = self.parser  # kept: the parser lets go of it once closed
        self.lines: dict[Element, int] = {}
        self._record = record
        self._root_seen = False
        if bare_doctype and not allow_doctype:
            self.expat.StartDoctypeDeclHandler = self._bare_doctype_only

    def _start(self, tag: str, attr_list: list[str]) -> Element:
        element = super()._start(tag, attr_list)
        if not self._root_seen or element.tag.rpartition("}")[2] in self._record:
            self.lines[element] = self.expat.CurrentLineNumber
            self._root_seen = True
        return element

    def _bare_doctype_only(
        self, name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool
    ) -> None:
        if sysid or pubid or has_internal_subset:
            raise DTDForbidden(name, sysid, pubid)


class XmlEvents:
    """Safe streaming XML: defusedxml iterparse with no entities and no external references.

    A DOCTYPE is refused too, unless ``bare_doctype`` (only ``<!DOCTYPE name>``, as nmap
    writes) or ``allow_doctype``. Iterating yields ``(event, element)`` for "start" and "end";
    while an "end" is handled, ``parent`` is the enclosing element, and ``discard(element)``
    drops a handled record so memory stays flat. Malformed or refused input raises
    ImportFormatError with the line and column; ``line_of`` gives the line on which the root
    or an element named in ``record_lines`` starts.
    """

    def __init__(
        self,
        stream: BinaryIO,
        filename: str,
        *,
        record_lines: frozenset[str] = frozenset(),
        allow_doctype: bool = False,
        bare_doctype: bool = False,
    ) -> None:
        self.filename = filename
        self._stream = skip_bom(stream)
        self._parser = _RecordingParser(
            record_lines, allow_doctype=allow_doctype, bare_doctype=bare_doctype
        )
        self.stack: list[Element] = []
        self.root: Element | None = None

    @property
    def parent(self) -> Element | None:
        return self.stack[-1] if self.stack else None

    def __iter__(self) -> Iterator[tuple[str, Element]]:
        try:
            for event, element in safe_iterparse(
                self._stream, events=("start", "end"), parser=self._parser
            ):
                if event == "start":
                    if self.root is None:
                        self.root = element
                    self.stack.append(element)
                else:
                    self.stack.pop()
                yield event, element
        except ParseError as exc:
            line, column = exc.position
            if self.root is None and exc.code == _XML_NO_ELEMENTS:
                raise ImportFormatError(
                    self.filename, "empty file: expected an XML document", f"line {line}"
                ) from None
            problem = re.sub(r": line \d+, column \d+$", "", str(exc))
            raise ImportFormatError(
                self.filename, f"malformed XML ({problem})", f"line {line}, column {column + 1}"
            ) from None
        except DefusedXmlException as exc:
            raise ImportFormatError(
                self.filename,
                f"refused XML: {exc} (reports may not declare a DTD, entities or external "
                "references)",
                self.position(),
            ) from None

    def position(self) -> str:
        """Where the parser is now: the line and column of the construct being read."""
        expat = self._parser.expat
        return f"line {expat.CurrentLineNumber}, column {expat.CurrentColumnNumber + 1}"

    def line_of(self, element: Element) -> str:
        """The line a recorded element starts on (forgotten once asked), or the parser's."""
        line = self._parser.lines.pop(element, None)
        return f"line {line}" if line is not None else self.position()

    def discard(self, element: Element) -> None:
        """Drop a handled element from the tree, so a long report does not pile up in memory."""
        self._parser.lines.pop(element, None)
        parent = self.parent
        element.clear()
        if parent is not None:
            with contextlib.suppress(ValueError):  # already gone: cleared by a caller
                parent.remove(element)

    def error(self, problem: str, element: Element | None = None) -> ImportFormatError:
        """An ImportFormatError about a readable element whose content makes no sense."""
        where = self.line_of(element) if element is not None else self.position()
        return ImportFormatError(self.filename, problem, where)


def local_name(tag: str) -> str:
    """An XML tag without its ``{namespace}``."""
    return tag.rpartition("}")[2]


# ----------------------------------------------------------------------------- locations

_DEFAULT_PORTS = {"http": 80, "https": 443}


def stable_url(url: str) -> str:
    """A URL as a finding location: without what changes from run to run.

    Query values (session ids, cache busters, a scanner's attack strings), the fragment and any
    user:password go; query parameter names stay, sorted and once each. Scheme and host are
    lower-cased and a default port is dropped. Text that is not a URL comes back stripped.
    """
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)})
    query = "&".join(f"{name}=" for name in names)
    return urlunsplit((scheme, netloc, parts.path or ("/" if netloc else ""), query, ""))


# ------------------------------------------------- JSON: deeper sniffing, streamed values


@dataclass(frozen=True)
class JsonOutline:
    """The shape of the first JSON value in a (possibly cut off) file start, at every depth.

    ``paths`` are the ijson prefixes of every member seen (``runs``, ``runs.item.tool.driver``),
    ``values`` the first scalar seen at each prefix (``{"version": "2.1.0"}``; long strings are
    left out), ``complete`` whether the whole first value fitted in the head. Where
    ``json_head`` answers "which members does the first object have", this answers "is there
    a ``matches[].artifact`` anywhere in what we can see".
    """

    kind: str
    paths: frozenset[str]
    values: dict[str, Any]
    complete: bool

    def top_level(self) -> frozenset[str]:
        return frozenset(path for path in self.paths if "." not in path)


_OUTLINE_VALUE_CHARS = 256
_CONTAINER_START = {"start_map": "object", "start_array": "array"}


@lru_cache(maxsize=4)
def json_outline(head: bytes) -> JsonOutline | None:
    """Outline the first JSON value of a file start (BOM and blanks already stripped).

    Cached: the registry asks every sniffer about the same head in turn.
    """
    kind: str | None = None
    paths: set[str] = set()
    values: dict[str, Any] = {}
    depth = 0
    complete = False
    try:
        for prefix, event, value in ijson.parse(io.BytesIO(head), multiple_values=True):
            if kind is None:
                kind = _CONTAINER_START.get(event, "null" if event == "null" else "scalar")
            if event == "map_key":
                paths.add(f"{prefix}.{value}" if prefix else value)
            elif event in _CONTAINER_START:
                depth += 1
            elif event in ("end_map", "end_array"):
                depth -= 1
            elif prefix not in values and (
                not isinstance(value, str) or len(value) <= _OUTLINE_VALUE_CHARS
            ):
                values[prefix] = value
            if depth == 0 and event != "map_key":
                complete = True
                break  # the first value is whole; JSON Lines go on with another
    except ijson.JSONError:
        pass
    if kind is None:
        return None
    return JsonOutline(kind=kind, paths=frozenset(paths), values=values, complete=complete)


class _JsonBound:
    """Marks the start or end of a bounded container (never equal to a value in the report)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"JSON_{self.name.upper()}"


JSON_START = _JsonBound("start")
JSON_END = _JsonBound("end")


class JsonValues:
    """The values at chosen paths of a streamed JSON report, each built only when reached.

    ``collect`` names ijson prefixes whose values are yielded whole, one at a time, as
    ``(prefix, value)`` (``Results.item.Vulnerabilities.item``: one vulnerability in memory,
    never the report); ``bounds`` names containers whose start and end are announced as
    ``(prefix, JSON_START)`` and ``(prefix, JSON_END)``, so a reader can keep context per
    ``Results.item`` (a scalar there is yielded as a value, so a reader can refuse it).
    Nothing inside a collected value is announced separately. Syntax errors
    come from ``json_events`` (file and byte offset); ``error()`` builds the message for a
    readable document whose content makes no sense, positioned by JSON path
    (``Results[2].Vulnerabilities[5]``).
    """

    def __init__(
        self,
        stream: BinaryIO,
        filename: str,
        collect: Iterable[str],
        bounds: Iterable[str] = (),
    ) -> None:
        self.filename = filename
        self.kind: str | None = None
        self._events = json_events(stream, filename)
        self._collect = frozenset(collect)
        self._bounds = frozenset(bounds)
        self._index: dict[str, int] = {}

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        watched = self._collect | self._bounds
        builder: ObjectBuilder | None = None
        building = ""
        for prefix, event, value in self._events:
            if builder is not None:
                builder.event(event, value)
                if prefix == building and (event == "end_map" or event == "end_array"):
                    yield building, builder.value
                    builder = None
                continue
            if self.kind is None:
                self.kind = _CONTAINER_START.get(event, "null" if event == "null" else "scalar")
            if prefix not in watched or event == "map_key":
                continue
            if event in _CONTAINER_START:
                self._count(prefix)
                if prefix in self._collect:
                    builder = ObjectBuilder()
                    builder.event(event, value)
                    building = prefix
                else:
                    yield prefix, JSON_START
            elif event == "end_map" or event == "end_array":
                yield prefix, JSON_END
            else:
                self._count(prefix)
                yield prefix, value

    def _count(self, prefix: str) -> None:
        self._index[prefix] = self._index.get(prefix, -1) + 1
        inner = f"{prefix}."
        for key in [key for key in self._index if key.startswith(inner)]:
            del self._index[key]

    def where(self, prefix: str) -> str:
        """A JSON path to the item last reached at ``prefix``: ``Results[2].Vulnerabilities[5]``."""
        steps: list[str] = []
        reached = ""
        for part in prefix.split("."):
            reached = f"{reached}.{part}" if reached else part
            if part == "item":
                index = self._index.get(reached)
                step = f"[{index}]" if index is not None else "[]"
                if steps:
                    steps[-1] += step
                else:
                    steps.append(step)
            else:
                steps.append(part)
        return ".".join(steps) or "the top level"

    def error(self, problem: str, prefix: str = "") -> ImportFormatError:
        return ImportFormatError(self.filename, problem, self.where(prefix))


# ------------------------------------------------------ packages, advisories, severities


def versionless_purl(purl: Any) -> str | None:
    """A package URL reduced to type, namespace and name, as packageurl normalises them.

    The version, qualifiers (``arch``, ``distro``, ``upstream``...) and subpath change with
    every upgrade or rebuild; the package does not. None for what is not a package URL.
    """
    if not isinstance(purl, str) or not purl.strip():
        return None
    return _versionless_purl(purl.strip())


@lru_cache(maxsize=8192)  # reports repeat a package for each of its advisories
def _versionless_purl(purl: str) -> str | None:
    try:
        parsed = PackageURL.from_string(purl)
        return PackageURL(parsed.type, parsed.namespace, parsed.name).to_string()
    except ValueError:
        return None


@lru_cache(maxsize=8192)  # reports repeat a package for each of its advisories
def package_purl(purl_type: str, name: str, namespace: str | None = None) -> str | None:
    """A versionless package URL from its parts (normalised by packageurl), or None."""
    if not isinstance(name, str) or not name or not isinstance(purl_type, str):
        return None
    try:
        return PackageURL(purl_type, namespace or None, name).to_string()
    except ValueError:
        return None


_ADVISORY_ID = re.compile(
    r"\b(?:(CVE-\d{4}-\d{4,})|(GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}))\b", re.IGNORECASE
)


def advisory_ids(*texts: Any) -> tuple[str, ...]:
    """The CVE and GHSA ids in these ids or texts, normalised, CVEs first, each sorted."""
    cves: set[str] = set()
    ghsas: set[str] = set()
    for text in texts:
        if not isinstance(text, str):
            continue
        for cve, ghsa in _ADVISORY_ID.findall(text):
            if cve:
                cves.add(cve.upper())
            else:
                ghsas.add("GHSA-" + ghsa[5:].lower())
    return (*sorted(cves), *sorted(ghsas))


def severity_from_cvss(score: Any) -> Severity | None:
    """The CVSS v3/v4 qualitative rating of a base score (0 is "none": info), or None."""
    if isinstance(score, bool) or not isinstance(score, int | float | str):
        return None
    try:
        value = float(score)
    except ValueError:
        return None
    if not 0.0 <= value <= 10.0:
        return None
    if value == 0.0:
        return Severity.INFO
    if value < 4.0:
        return Severity.LOW
    if value < 7.0:
        return Severity.MEDIUM
    if value < 9.0:
        return Severity.HIGH
    return Severity.CRITICAL


def cvss_base_score(vector: Any) -> float | None:
    """The base score of a CVSS v2, v3.x or v4.0 vector, or None when it does not parse."""
    if not isinstance(vector, str) or not vector.strip():
        return None
    from cvss import CVSS2, CVSS3, CVSS4, CVSSError

    text = vector.strip()
    kind = CVSS4 if text.startswith("CVSS:4") else CVSS3 if text.startswith("CVSS:3") else CVSS2
    try:
        return float(kind(text).base_score)
    except (CVSSError, ValueError, KeyError, IndexError):
        return None


# --- reading untrusted JSON values: a wrong type reads as empty, never as an exception ----------


def mapping_of(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def text_of(value: Any) -> str:
    """A string value, trimmed, without NUL characters (which no JSON column can store)."""
    return value.replace("\x00", "").strip() if isinstance(value, str) else ""
