"""Read SBOM files and print their components as one normalised JSON document.

Run by the sbom engine through the subprocess runner::

    python -m autosec.engines.sbom.read /srv/sboms/shop.cdx.json [MORE.json ...]

Formats:

- CycloneDX JSON and XML (spec 1.1 to 1.6), read and validated with cyclonedx-python-lib; XML
  is parsed with defusedxml first (no entity expansion, no external references). When the
  library refuses a document that is otherwise plainly CycloneDX (real generators write, e.g.,
  an empty ``metadata.component.type``), its components are read leniently and the refusal is
  kept as a warning beside them, so one sloppy field does not hide a vulnerable dependency.
- SPDX 2.x JSON, read with the standard library (spdx-tools is not a dependency): packages,
  their ``purl`` external references and ``releaseDate``.
- Refused with a clear message: SPDX tag-value and SPDX 3 JSON-LD, anything else.

The subject of the document (CycloneDX ``metadata.component``, the packages an SPDX document
DESCRIBES) is not listed as a component: it is the software the SBOM is about, not one of its
dependencies.

Release dates, for the freshness policy, come from SPDX ``releaseDate``, CycloneDX
``releaseNotes.timestamp``, or a component property named in ``RELEASE_DATE_PROPERTIES``.

Output (stdout, exit 0): ``{"autosec_sbom_inventory": 1, "documents": [...]}``, each document
with its path, sha256, format, spec version and components ``{name, version, purl, type,
bom_ref, release_date}``. A file that cannot be read prints ``sbom: <file>: <problem>`` on
stderr and exits 2: the run fails and closes nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

INVENTORY_VERSION = 1
MAX_SBOM_BYTES = 128 * 1024 * 1024
RELEASE_DATE_PROPERTIES = frozenset(
    {
        "autosec:release-date",
        "release-date",
        "release_date",
        "releasedate",
        "published",
        "publishtime",
        "cdx:npm:package:publishtime",
    }
)


class SbomError(ValueError):
    """An SBOM that cannot be read; the message names the file and the problem."""


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    if paths == ["--version"]:
        print(f"autosec-sbom-reader {INVENTORY_VERSION} ({_library_versions()})")
        return 0
    if not paths:
        print("usage: python -m autosec.engines.sbom.read SBOM [SBOM ...]", file=sys.stderr)
        return 2
    try:
        documents = [read_sbom_file(path) for path in paths]
    except SbomError as exc:
        print(f"sbom: {exc}", file=sys.stderr)
        return 2
    json.dump(
        {"autosec_sbom_inventory": INVENTORY_VERSION, "documents": documents},
        sys.stdout,
        sort_keys=True,
    )
    sys.stdout.write("\n")
    return 0


def _library_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"cyclonedx-python-lib {version('cyclonedx-python-lib')}"
    except PackageNotFoundError:
        return "cyclonedx-python-lib not installed"


def read_sbom_file(path: str | Path) -> dict[str, Any]:
    """One document from a file; the document's ``path`` is ``path`` exactly as given."""
    name = str(path)
    file = Path(path)
    try:
        if not file.is_file():
            raise SbomError(f"{name}: not a regular file")
        size = file.stat().st_size
        if size > MAX_SBOM_BYTES:
            raise SbomError(f"{name}: {size} bytes, more than the {MAX_SBOM_BYTES}-byte limit")
        data = file.read_bytes()
    except OSError as exc:
        raise SbomError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    return read_sbom_bytes(data, name)


def read_sbom_bytes(data: bytes, name: str) -> dict[str, Any]:
    """Detect the format, validate, and normalise; ``name`` is used in messages and output."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SbomError(f"{name}: not UTF-8 (byte {exc.start})") from exc
    head = text.lstrip()[:200]
    if head.startswith("<"):
        document = _cyclonedx_xml(text, name)
    elif head.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SbomError(
                f"{name}: line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
            ) from exc
        document = _json_document(parsed, name)
    elif head.startswith(("SPDXVersion:", "##")) or "SPDXVersion:" in head:
        raise SbomError(
            f"{name}: SPDX tag-value is not supported (spdx-tools is not installed); "
            "convert it to SPDX JSON"
        )
    else:
        raise SbomError(f"{name}: neither CycloneDX (JSON or XML) nor SPDX JSON")
    document["path"] = name
    document["sha256"] = hashlib.sha256(data).hexdigest()
    document["components"] = sorted(
        document["components"],
        key=lambda c: (c["purl"] or "", c["name"], c["version"] or "", c["bom_ref"] or ""),
    )
    return document


def _json_document(parsed: Any, name: str) -> dict[str, Any]:
    if not isinstance(parsed, dict):
        raise SbomError(f"{name}: expected a JSON object, got {type(parsed).__name__}")
    if parsed.get("bomFormat") == "CycloneDX":
        return _cyclonedx_json(parsed, name)
    if isinstance(parsed.get("spdxVersion"), str):
        return _spdx2_json(parsed, name)
    if "@graph" in parsed or "@context" in parsed:
        raise SbomError(f"{name}: SPDX 3 JSON-LD is not supported; export SPDX 2.3 JSON")
    raise SbomError(f"{name}: a JSON object with neither bomFormat CycloneDX nor spdxVersion")


# --- CycloneDX ------------------------------------------------------------------------------


def _cyclonedx_json(parsed: dict[str, Any], name: str) -> dict[str, Any]:
    spec = str(parsed.get("specVersion") or "")
    from cyclonedx.model.bom import Bom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bom = Bom.from_json(parsed)
    except Exception as exc:  # the library raises many types for one meaning: not valid
        components = parsed.get("components", [])
        if not isinstance(components, list):
            raise SbomError(f"{name}: components: expected a list") from exc
        return _document(
            "cyclonedx-json",
            spec,
            list(_lenient_json_components(components, name, "components")),
            [_refusal(exc)],
        )
    return _document("cyclonedx-json", spec, list(_model_components(bom)), [])


def _cyclonedx_xml(text: str, name: str) -> dict[str, Any]:
    try:
        root = fromstring(text)
    except (ParseError, DefusedXmlException) as exc:
        raise SbomError(f"{name}: not readable XML: {exc}") from exc
    if _local(root.tag) != "bom":
        raise SbomError(f"{name}: XML root is <{_local(root.tag)}>, not a CycloneDX <bom>")
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    spec = namespace.rsplit("/", 1)[-1] if namespace.startswith("http://cyclonedx.org") else ""
    from cyclonedx.model.bom import Bom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bom = Bom.from_xml(root)
    except Exception as exc:  # noqa: BLE001 - many exception types, one meaning: refused
        return _document(
            "cyclonedx-xml", spec, list(_lenient_xml_components(root, name)), [_refusal(exc)]
        )
    return _document("cyclonedx-xml", spec, list(_model_components(bom)), [])


def _refusal(exc: Exception) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"cyclonedx-python-lib refused the document ({type(exc).__name__}: {message[:300]}); "
        "components were read leniently"
    )


def _document(
    fmt: str, spec: str, components: list[dict[str, Any]], warnings_: list[str]
) -> dict[str, Any]:
    return {"format": fmt, "spec_version": spec, "components": components, "warnings": warnings_}


def _model_components(bom: Any) -> Iterator[dict[str, Any]]:
    seen: set[int] = set()

    def walk(components: Iterable[Any]) -> Iterator[Any]:
        for component in components:
            if id(component) in seen:
                continue
            seen.add(id(component))
            yield component
            yield from walk(component.components)

    for component in walk(bom.components):
        notes = getattr(component, "release_notes", None)
        release = _release_date(
            [(p.name, p.value) for p in component.properties],
            getattr(notes, "timestamp", None),
        )
        yield _component(
            name=_qualified_name(component.group, component.name),
            version=component.version,
            purl=component.purl.to_string() if component.purl is not None else None,
            kind=component.type.value if component.type is not None else None,
            bom_ref=component.bom_ref.value if component.bom_ref is not None else None,
            release_date=release,
        )


def _lenient_json_components(
    components: list[Any], name: str, where: str
) -> Iterator[dict[str, Any]]:
    for index, item in enumerate(components):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SbomError(f"{name}: {here}: a component needs at least a name")
        properties = [
            (p.get("name"), p.get("value"))
            for p in item.get("properties") or []
            if isinstance(p, dict)
        ]
        notes = item.get("releaseNotes")
        yield _component(
            name=_qualified_name(item.get("group"), item["name"]),
            version=_text_or_none(item.get("version")),
            purl=_text_or_none(item.get("purl")),
            kind=_text_or_none(item.get("type")),
            bom_ref=_text_or_none(item.get("bom-ref")),
            release_date=_release_date(
                properties, notes.get("timestamp") if isinstance(notes, dict) else None
            ),
        )
        nested = item.get("components")
        if isinstance(nested, list):
            yield from _lenient_json_components(nested, name, f"{here}.components")


def _lenient_xml_components(root: Element, name: str) -> Iterator[dict[str, Any]]:
    subject = {
        id(element)
        for metadata in root
        if _local(metadata.tag) == "metadata"
        for element in metadata.iter()
    }
    for element in root.iter():
        if _local(element.tag) != "component" or id(element) in subject:
            continue
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        if not fields.get("name"):
            raise SbomError(f"{name}: a <component> without a <name>")
        properties = [
            (p.get("name"), (p.text or "").strip())
            for child in element
            if _local(child.tag) == "properties"
            for p in child
        ]
        yield _component(
            name=_qualified_name(fields.get("group"), fields["name"]),
            version=fields.get("version") or None,
            purl=fields.get("purl") or None,
            kind=element.get("type"),
            bom_ref=element.get("bom-ref"),
            release_date=_release_date(properties, None),
        )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# --- SPDX 2.x JSON --------------------------------------------------------------------------


def _spdx2_json(parsed: dict[str, Any], name: str) -> dict[str, Any]:
    version = parsed["spdxVersion"]
    if not version.startswith("SPDX-2."):
        raise SbomError(f"{name}: spdxVersion {version!r}: only SPDX 2.x JSON is supported")
    packages = parsed.get("packages") or []
    if not isinstance(packages, list):
        raise SbomError(f"{name}: packages: expected a list")
    described = set(parsed.get("documentDescribes") or [])
    for relation in parsed.get("relationships") or []:
        if (
            isinstance(relation, dict)
            and relation.get("relationshipType") == "DESCRIBES"
            and relation.get("spdxElementId") == parsed.get("SPDXID")
        ):
            described.add(relation.get("relatedSpdxElement"))
    components = []
    for index, package in enumerate(packages):
        where = f"packages[{index}]"
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            raise SbomError(f"{name}: {where}: a package needs at least a name")
        if package.get("SPDXID") in described:
            continue
        purls = [
            ref.get("referenceLocator")
            for ref in package.get("externalRefs") or []
            if isinstance(ref, dict)
            and str(ref.get("referenceType", "")).lower() == "purl"
            and isinstance(ref.get("referenceLocator"), str)
        ]
        release = package.get("releaseDate")
        try:
            release_date = _as_date(release) if release else None
        except ValueError:
            raise SbomError(f"{name}: {where}: releaseDate {release!r} is not a date") from None
        components.append(
            _component(
                name=package["name"],
                version=_text_or_none(package.get("versionInfo")),
                purl=purls[0] if purls else None,
                kind=_text_or_none(package.get("primaryPackagePurpose")),
                bom_ref=_text_or_none(package.get("SPDXID")),
                release_date=release_date.isoformat() if release_date else None,
            )
        )
    return _document("spdx-json", version.removeprefix("SPDX-"), components, [])


# --- shared ---------------------------------------------------------------------------------


def _component(
    *,
    name: str,
    version: str | None,
    purl: str | None,
    kind: str | None,
    bom_ref: str | None,
    release_date: str | None,
) -> dict[str, Any]:
    return {
        "name": name,
        "version": version or None,
        "purl": purl or None,
        "type": kind or None,
        "bom_ref": bom_ref or None,
        "release_date": release_date,
    }


def _qualified_name(group: Any, name: str) -> str:
    return f"{group}:{name}" if isinstance(group, str) and group.strip() else name


def _text_or_none(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _release_date(properties: Iterable[tuple[Any, Any]], notes_timestamp: Any) -> str | None:
    for key, value in properties:
        if isinstance(key, str) and key.strip().lower() in RELEASE_DATE_PROPERTIES and value:
            try:
                return _as_date(value).isoformat()
            except ValueError:
                continue
    if notes_timestamp:
        try:
            return _as_date(notes_timestamp).isoformat()
        except ValueError:
            return None
    return None


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text).date()
    except ValueError:
        return date.fromisoformat(text[:10])


if __name__ == "__main__":
    raise SystemExit(main())
