"""gitleaks JSON reports (``gitleaks detect --report-format json``), v7 and v8 key sets.

v8 writes an array of objects with ``RuleID``, ``Secret``, ``Match``, ``File``, ``StartLine``,
``Commit``...; v7 wrote ``rule``, ``offender``, ``line``, ``file``, ``lineNumber``, ``commit``...
A run without leaks writes ``[]`` (v8) or the literal ``null`` (v7): both mean "no findings".
A 0-byte file is refused: gitleaks always writes one of those, so an empty file is a run that
did not finish, and importing it would close every open leak.

Identity (the fingerprint is built later from asset + rule_id + location):
- ``rule_id``: the gitleaks rule id (v8 ``RuleID``, v7 ``rule``);
- ``location``: ``file`` and ``line`` (v8 ``StartLine``, v7 ``lineNumber``). The commit, author
  and date go to the evidence only: the same leak seen in another commit of the history, or
  after a rebase, is the same finding.

The secret is never kept in clear: not in the evidence, the title or the description. Only its
sha256 and a masked preview survive (``autosec.domain.secrets.conceal``); ``Match`` / ``line``
(the source line around the secret) and the commit message are dropped, and any field that
still contains the secret has it replaced by the preview. A report written with ``--redact``
carries ``REDACTED`` instead of the secret: then there is nothing to hash and the evidence says
``secret_redacted``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import ijson

from autosec.domain.models import Location, Severity
from autosec.domain.secrets import conceal
from autosec.engines.importers.base import (
    ImportedFinding,
    Importer,
    ImportFormatError,
    json_events,
    json_head,
    text_of,
)

REDACTED = "REDACTED"
# Shorter values are not scrubbed out of other fields: they would match ordinary words.
_MIN_SCRUB_LENGTH = 4
_DESCRIPTION = (
    "gitleaks found what looks like a credential committed to the repository. Anyone who can "
    "read the repository or its history can use it: revoke or rotate the secret first, then "
    "remove it from the code (and the history, if the repository is shared)."
)


class GitleaksImporter(Importer):
    name = "gitleaks"
    description = "gitleaks JSON report (v7 and v8): leaked secrets by file and line"

    def sniff(self, head: bytes) -> bool:
        shape = json_head(head)
        if shape is None or shape.kind != "array":
            return False
        keys = shape.members
        return ("RuleID" in keys or "rule" in keys) and ("Secret" in keys or "offender" in keys)

    def parse(self, stream: BinaryIO, filename: str) -> Iterator[ImportedFinding]:
        events = json_events(stream, filename)
        first = next(events, None)
        if first is None:
            return
        _, event, _ = first
        if event == "null":
            return  # gitleaks v7: no leaks
        if event != "start_array":
            raise ImportFormatError(
                filename,
                f"not a gitleaks report: the document is a JSON {_kind(event)}, expected an "
                "array of findings (or null)",
                "byte 0",
            )
        for index, item in enumerate(ijson.items(_chain(first, events), "item"), start=1):
            if not isinstance(item, Mapping):
                raise ImportFormatError(
                    filename,
                    f"a finding is a JSON {type(item).__name__}, not an object",
                    f"finding {index}",
                )
            yield _finding(item, filename, index)


def _chain(first: tuple[str, str, Any], rest: Iterator[tuple[str, str, Any]]):
    yield first
    yield from rest


def _kind(event: str) -> str:
    return {"start_map": "object", "string": "string", "number": "number"}.get(event, event)


def _finding(item: Mapping[str, Any], filename: str, index: int) -> ImportedFinding:
    v8 = "RuleID" in item
    rule_id = text_of(item.get("RuleID") if v8 else item.get("rule"))
    if not rule_id:
        raise ImportFormatError(
            filename, "a finding without a rule id (RuleID / rule)", f"finding {index}"
        )
    secret = text_of(item.get("Secret") if v8 else item.get("offender"))
    file = text_of(item.get("File") if v8 else item.get("file")) or None
    line = _line(item.get("StartLine") if v8 else item.get("lineNumber"))
    rule_description = text_of(item.get("Description")) if v8 else ""
    tags = item.get("Tags") if v8 else item.get("tags")
    evidence: dict[str, Any] = {
        "commit": text_of(item.get("Commit") if v8 else item.get("commit")) or None,
        "author": text_of(item.get("Author") if v8 else item.get("author")) or None,
        "date": text_of(item.get("Date") if v8 else item.get("date")) or None,
        "tags": _tags(tags),
    }
    if v8:
        evidence.update(
            end_line=_line(item.get("EndLine")),
            start_column=_line(item.get("StartColumn")),
            end_column=_line(item.get("EndColumn")),
            entropy=item.get("Entropy") if isinstance(item.get("Entropy"), int | float) else None,
            symlink_file=text_of(item.get("SymlinkFile")) or None,
            link=text_of(item.get("Link")) or None,
        )
    else:
        evidence["link"] = text_of(item.get("leakURL")) or None
    evidence = {key: value for key, value in evidence.items() if value not in (None, [], "")}
    if not secret or secret == REDACTED:
        evidence["secret_redacted"] = True
        preview = None
    else:
        concealed = conceal(secret)
        evidence.update(concealed)
        preview = concealed["secret_preview"]
    label = rule_description or rule_id
    where = f"{file}:{line}" if file and line else file or "the repository"
    finding = ImportedFinding(
        rule_id=rule_id,
        title=f"Leaked secret ({label}) in {where}",
        severity=Severity.HIGH,
        location=Location(file=file, line=line),
        target=_target(item),
        description=_DESCRIPTION,
        cwe="CWE-798",
        evidence=evidence,
    )
    if preview is not None and len(secret) >= _MIN_SCRUB_LENGTH:
        finding = _scrubbed(finding, secret, preview)
    return finding


def _target(item: Mapping[str, Any]) -> str | None:
    """What was scanned: v7 names the repository; v8 does not (the importer names the asset)."""
    for key in ("repoURL", "repo"):
        value = text_of(item.get(key))
        if value and value != ".":
            return value
    return None


def _scrubbed(finding: ImportedFinding, secret: str, preview: str) -> ImportedFinding:
    """The finding with any remaining copy of the secret replaced by its masked preview."""

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(secret, preview)
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    location = finding.location
    return ImportedFinding(
        rule_id=scrub(finding.rule_id),
        title=scrub(finding.title),
        severity=finding.severity,
        location=Location(file=scrub(location.file), line=location.line),
        target=scrub(finding.target),
        description=finding.description,
        cwe=finding.cwe,
        evidence={
            key: value if key in ("secret_sha256", "secret_preview") else scrub(value)
            for key, value in finding.evidence.items()
        },
    )


def _line(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = int(value)
    return number if number > 0 else None


def _tags(value: Any) -> list[str]:
    """v8 writes a list, v7 a comma-separated string ("key, AWS")."""
    if isinstance(value, str):
        return [tag.strip() for tag in value.split(",") if tag.strip()]
    if isinstance(value, list):
        return [str(tag).strip() for tag in value if str(tag).strip()]
    return []
