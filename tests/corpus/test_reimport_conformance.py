"""Every real scanner report the importers read, through the import stage on the real store.

For each report under ``corpus/scanners`` that the registry sniffs as an importer's format (and
the few that only parse when the format is named: empty files, ``null``, ``[]``), imported for one
asset:

a. importing the same file again creates, closes and reopens nothing, writes no history and
   leaves exactly one stored finding per fingerprint the report yields;
b. a copy of the report with one record removed (format-aware: one SARIF result, one Trivy
   vulnerability, one nuclei line, one ZAP alert instance group, one nmap port, script or
   service, one VEX vulnerability; or every record of a finding the report gives several times)
   closes exactly that finding and changes nothing else; importing the original again reopens
   exactly that one.

The record to remove is chosen by parsing candidate copies: it must take away exactly one of the
report's fingerprints (and one ``(rule_id, location)``) and leave every other finding as it was;
a record whose finding another record duplicates removes nothing and is passed over. A report
whose findings survive no such removal fails: its identities are then not what triage sees.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as XmlWriter  # serialising only: parsing goes via defusedxml

import pytest
from defusedxml import ElementTree as SafeXml
from tests.conftest import CORPUS

from autosec.domain.fingerprint import fingerprint
from autosec.domain.models import Asset, AssetKind, Criticality, Environment, Location
from autosec.engines.importers.base import SNIFF_BYTES, local_name, stable_url
from autosec.engines.importers.registry import IMPORTERS, get_importer, sniff_format
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.imports import ImportSummary, import_report, triage_now
from autosec.store import inventory

pytestmark = pytest.mark.integration

SCANNERS = CORPUS / "scanners"
DOJO = "DefectDojo__django-DefectDojo"
ASSET = "corpus-target"
T0 = datetime(2026, 11, 2, 9, tzinfo=UTC)
DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 180, "info": None}
# Reports no sniffer can claim (the importer corpus tests say why), read when the format is named.
NAMED_FORMAT = {
    f"{DOJO}/osv_scanner/no_findings.json": "osv-scanner",  # 0 bytes
    f"{DOJO}/gitleaks/no_findings.json": "gitleaks",  # null
    "gitleaks__gitleaks/gitleaks/empty.json": "gitleaks",  # []
    f"{DOJO}/nuclei/empty.jsonl": "nuclei",  # 0 bytes
    f"{DOJO}/nuclei/no_findings.json": "nuclei",  # 0 bytes
}

Identity = tuple[str, Location]


def _cases() -> list[tuple[str, str]]:
    if not SCANNERS.is_dir():
        return []
    cases = []
    for path in sorted(SCANNERS.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(SCANNERS).as_posix()
        with path.open("rb") as stream:
            fmt = NAMED_FORMAT.get(rel) or sniff_format(stream.read(SNIFF_BYTES))
        if fmt is not None:
            cases.append((rel, fmt))
    return cases


CASES = _cases()


@pytest.fixture(autouse=True)
def _needs_corpus() -> None:
    if not SCANNERS.is_dir():
        pytest.skip(f"shared corpus not found at {SCANNERS}")


# --- what the importer says a report holds ------------------------------------------------------


def identities(data: bytes | Path, fmt: str) -> dict[str, set[Identity]]:
    """fingerprint -> the (rule_id, location) pairs the importer reads that triage, which
    fingerprints them for our asset, takes for that one finding."""
    importer = get_importer(fmt)
    if isinstance(data, Path):
        with data.open("rb") as stream:
            findings = list(importer.parse(stream, str(data)))
    else:
        findings = list(importer.parse(io.BytesIO(data), "copy"))
    found: dict[str, set[Identity]] = {}
    for f in findings:
        key = fingerprint(f.to_observation(ASSET, importer.engine_name))
        found.setdefault(key, set()).add((f.rule_id, f.location))
    return found


def _all(found: dict[str, set[Identity]]) -> set[Identity]:
    return set().union(*found.values())


# --- copies with one record removed ------------------------------------------------------------

Removal = Callable[[Any], None]


def _walk(document: Any, path: tuple[Any, ...]) -> list:
    for step in path:
        document = document[step]
    return document


def _drop(path: tuple[Any, ...], indexes: Iterable[int]) -> Removal:
    def remove(document: Any) -> None:
        container = _walk(document, path)
        for index in sorted(indexes, reverse=True):
            del container[index]

    return remove


def _lists(document: Any, fmt: str) -> Iterator[tuple[tuple[Any, ...], list]]:
    """The arrays whose elements are the format's records, most natural record first."""

    def at(*path: Any) -> Iterator[tuple[tuple[Any, ...], list]]:
        value = document
        for step in path:
            present = step in value if isinstance(value, dict) else isinstance(value, list)
            if not present:
                return
            value = value[step]
        if isinstance(value, list):
            yield path, value

    if fmt in ("gitleaks", "nuclei") and isinstance(document, list):
        yield from at()
    elif fmt == "grype":
        yield from at("matches")
    elif fmt == "sarif":
        for r, _ in enumerate(document.get("runs") or []):
            yield from at("runs", r, "results")
    elif fmt == "trivy":  # a report object, or the bare list of results of old versions
        prefix: tuple[Any, ...] = () if isinstance(document, list) else ("Results",)
        results = document if isinstance(document, list) else document.get("Results") or []
        for r, _ in enumerate(results):
            for key in ("Vulnerabilities", "Misconfigurations", "Secrets"):
                yield from at(*prefix, r, key)
    elif fmt == "osv-scanner":
        for r, _ in enumerate(document.get("results") or []):
            yield from at("results", r, "packages")
    elif fmt == "cyclonedx-vex":
        yield from at("vulnerabilities")
        for v, _ in enumerate(document.get("vulnerabilities") or []):
            yield from at("vulnerabilities", v, "affects")


def _osv_group_removals(document: dict) -> Iterator[tuple[str, Removal]]:
    """One osv-scanner alias group and the records it names (a package may hold several)."""
    for r, result in enumerate(document.get("results") or []):
        for p, package in enumerate(result.get("packages") or []):
            for g, group in enumerate(package.get("groups") or []):
                ids = set(group.get("ids") or [])

                def remove(doc: Any, r: int = r, p: int = p, g: int = g, ids=ids) -> None:
                    package = doc["results"][r]["packages"][p]
                    del package["groups"][g]
                    package["vulnerabilities"] = [
                        v for v in package.get("vulnerabilities") or [] if v.get("id") not in ids
                    ]

                yield f"results[{r}].packages[{p}].groups[{g}] and its records", remove


def _same_finding_groups(items: list, alone: Callable[[int], bytes], fmt: str) -> list[list[int]]:
    """Indexes of records that report the same findings (a leak seen in two commits): parsed
    one at a time, in their report, they give the same identities."""
    groups: dict[frozenset[str], list[int]] = {}
    for index in range(len(items)):
        groups.setdefault(frozenset(identities(alone(index), fmt)), []).append(index)
    return [indexes for indexes in groups.values() if len(indexes) > 1]


def _json_path(path: tuple[Any, ...], indexes: Iterable[int]) -> str:
    where = "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path)
    return f"{where.lstrip('.')}[{', '.join(map(str, indexes))}]"


Copy = tuple[str, bytes]  # what was removed, and the report without it


def _middle_first(count: int) -> list[int]:
    """Candidates from the middle of a report on: neither its first nor its last record."""
    return [*range(count // 2, count), *range(count // 2)]


def _json_copies(text: str, fmt: str) -> Iterator[Copy]:
    """Copies without one record; then, for findings several records report, without all of
    those records."""
    if fmt == "nuclei" and not text.lstrip().startswith("["):  # JSON Lines: one result a line
        lines = [line for line in text.splitlines(keepends=True) if line.strip()]
        for i in _middle_first(len(lines)):
            yield f"result line {i + 1}", "".join(lines[:i] + lines[i + 1 :]).encode()
        for group in _same_finding_groups(lines, lambda i: lines[i].encode(), fmt):
            kept = "".join(line for i, line in enumerate(lines) if i not in group)
            yield f"result lines {', '.join(str(i + 1) for i in group)}", kept.encode()
        return

    def copy_with(change: Removal) -> bytes:
        copy = json.loads(text)
        change(copy)
        return json.dumps(copy, ensure_ascii=False, indent=1).encode()

    document = json.loads(text)
    lists = list(_lists(document, fmt))
    for path, items in lists:
        for i in _middle_first(len(items)):
            yield _json_path(path, [i]), copy_with(_drop(path, [i]))
    if fmt == "osv-scanner":
        for label, remove in _osv_group_removals(document):
            yield label, copy_with(remove)
    for path, items in lists:

        def alone(index: int, path: tuple[Any, ...] = path, size: int = len(items)) -> bytes:
            return copy_with(_drop(path, [i for i in range(size) if i != index]))

        for group in _same_finding_groups(items, alone, fmt):
            yield _json_path(path, group), copy_with(_drop(path, group))


def _xml_targets(root: Any, fmt: str) -> Iterator[list[Any]]:
    """Groups of elements whose removal together is one record of the format."""
    if fmt == "zap":
        for item in root.iter("alertitem"):
            groups: dict[str, list[Any]] = {}
            for instance in item.iterfind("instances/instance"):
                groups.setdefault(stable_url(instance.findtext("uri") or ""), []).append(instance)
            if len(groups) > 1:
                yield from groups.values()
            yield [item]
    elif fmt == "nmap-xml":
        for host in root.iter("host"):
            for script in host.iterfind("hostscript/script"):
                yield [script]
            for port in host.iterfind("ports/port"):
                yield from ([script] for script in port.iterfind("script"))
                # the service nmap identified: without it, no version is disclosed
                yield from ([service] for service in port.iterfind("service"))
                yield [port]
    elif fmt == "cyclonedx-vex":
        for element in root.iter():
            if local_name(element.tag) == "vulnerability":
                yield [element]
        for element in root.iter():
            if local_name(element.tag) == "affects":
                yield from ([target] for target in element)


def _xml_label(element: Any) -> str:
    attributes = " ".join(f'{k}="{v}"' for k, v in element.attrib.items())
    text = (element.findtext("pluginid") or element.findtext("uri") or "").strip()
    return f"<{local_name(element.tag)}{' ' if attributes else ''}{attributes[:60]}>{text[:80]}"


def _xml_copies(data: bytes, fmt: str) -> Iterator[Copy]:
    original = SafeXml.fromstring(data)
    order = {element: i for i, element in enumerate(original.iter())}
    targets = list(_xml_targets(original, fmt))
    for group in (targets[i] for i in _middle_first(len(targets))):
        positions = {order[element] for element in group}
        root = SafeXml.fromstring(data)
        elements = list(root.iter())
        parents = {child: parent for parent in root.iter() for child in parent}
        for position in positions:
            parents[elements[position]].remove(elements[position])
        label = " + ".join(_xml_label(element) for element in group)
        yield label, XmlWriter.tostring(root, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class OneRemoved:
    """A copy of a report without exactly one of its findings."""

    data: bytes
    record: str  # what was taken out of the report
    fingerprint: str
    identity: Identity


def one_record_removed(path: Path, fmt: str) -> OneRemoved:
    data = path.read_bytes()
    before = identities(path, fmt)
    if fmt in ("zap", "nmap-xml") or data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        copies = _xml_copies(data, fmt)
    else:
        copies = _json_copies(data.decode("utf-8-sig"), fmt)
    for record, copy in copies:
        after = identities(copy, fmt)
        gone = set(before) - set(after)
        if len(gone) != 1 or not set(after) <= set(before):
            continue
        removed = gone.pop()
        if len(before[removed]) == 1 and _all(after) == _all(before) - before[removed]:
            return OneRemoved(copy, record, removed, next(iter(before[removed])))
    raise AssertionError(f"{path}: no record whose removal takes away exactly one finding")


# --- the store ----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class Importing:
    """Imports reports for one asset with one clock, and reads back what the store holds."""

    def __init__(self, conn, tmp_path: Path, fmt: str) -> None:
        self.conn = conn
        self.fmt = fmt
        self.clock = Clock()
        self.blobs = LocalBlobStore(tmp_path / "blobs")
        run = inventory.start_sync(conn, "cmdb", "file")
        asset = Asset(
            ASSET,
            ASSET,
            AssetKind.HOST,
            "cmdb",
            "team-corpus",
            Environment.PRODUCTION,
            Criticality.HIGH,
        )
        inventory.apply_source_snapshot(conn, run, "cmdb", [asset], T0)
        conn.commit()

    def __call__(self, path: Path) -> ImportSummary:
        summary = import_report(
            self.conn,
            path,
            self.blobs,
            triage_now(DAYS, self.clock),
            self.clock,
            format_name=self.fmt,
            asset_id=ASSET,
        )
        assert summary.errors == [], summary.errors
        assert summary.scan_run_id is not None
        return summary

    def statuses(self) -> dict[str, str]:
        rows = self.conn.execute("SELECT fingerprint, status FROM findings").fetchall()
        return dict(rows)

    def fingerprint_counts(self) -> Counter:
        rows = self.conn.execute("SELECT fingerprint FROM findings").fetchall()
        return Counter(r[0] for r in rows)

    def history_rows(self) -> int:
        return self.conn.execute("SELECT count(*) FROM finding_history").fetchone()[0]

    def engine_of(self, summary: ImportSummary) -> str:
        return self.conn.execute(
            "SELECT engine FROM scan_runs WHERE id = %s", (summary.scan_run_id,)
        ).fetchone()[0]


def outcome(
    *, created: int = 0, updated: int = 0, unchanged: int = 0, closed: int = 0, reopened: int = 0
) -> dict[str, int]:
    return {
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "closed": closed,
        "reopened": reopened,
    }


def counts(summary: ImportSummary) -> dict[str, int]:
    return {
        key: getattr(summary, key)
        for key in ("created", "updated", "unchanged", "closed", "reopened")
    }


# --- the tests ----------------------------------------------------------------------------------


def test_every_importer_has_scanner_reports_in_the_corpus() -> None:
    """So a sniffer that stops claiming a format's reports cannot shrink this run unseen."""
    formats = Counter(fmt for _, fmt in CASES)
    assert set(formats) == set(IMPORTERS), formats


@pytest.mark.parametrize(("rel", "fmt"), CASES, ids=[rel for rel, _ in CASES])
def test_reimport_is_a_no_op_and_one_removed_record_closes_then_reopens_one(
    conn, tmp_path: Path, rel: str, fmt: str
) -> None:
    report = SCANNERS / rel
    expected = identities(report, fmt)
    run = Importing(conn, tmp_path, fmt)

    first = run(report)
    assert first.format == fmt
    assert counts(first) == outcome(created=len(expected))
    assert run.fingerprint_counts() == Counter(set(expected))
    history = run.history_rows()

    again = run(report)
    assert counts(again) == outcome(unchanged=len(expected))
    assert run.history_rows() == history
    assert run.fingerprint_counts() == Counter(set(expected))
    if not expected:
        return

    statuses = run.statuses()
    removal = one_record_removed(report, fmt)
    gone = f"without {removal.record}: {removal.identity}"
    copy = tmp_path / "copy" / report.name
    copy.parent.mkdir()
    copy.write_bytes(removal.data)

    fewer = run(copy)
    assert run.engine_of(fewer) == run.engine_of(first), gone
    assert counts(fewer) == outcome(unchanged=len(expected) - 1, closed=1), gone
    assert run.statuses() == {**statuses, removal.fingerprint: "fixed"}, gone
    assert run.history_rows() == history + 1, gone

    back = run(report)
    assert counts(back) == outcome(unchanged=len(expected) - 1, reopened=1), gone
    assert run.statuses() == {**statuses, removal.fingerprint: "reopened"}, gone
    assert run.history_rows() == history + 2, gone
    assert run.fingerprint_counts() == Counter(set(expected))
