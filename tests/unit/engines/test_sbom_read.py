"""The SBOM reader: CycloneDX JSON/XML and SPDX 2 JSON normalised, everything else refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autosec.engines.sbom.read import SbomError, main, read_sbom_bytes, read_sbom_file

CDX = {
    "bomFormat": "CycloneDX",
    "specVersion": "1.5",
    "version": 1,
    "metadata": {"component": {"type": "application", "name": "shop", "purl": "pkg:npm/shop@1"}},
    "components": [
        {
            "type": "library",
            "bom-ref": "log4j",
            "group": "org.apache.logging.log4j",
            "name": "log4j-core",
            "version": "2.14.1",
            "purl": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            "properties": [{"name": "autosec:release-date", "value": "2021-03-06"}],
            "components": [
                {
                    "type": "library",
                    "name": "inner",
                    "version": "1.0",
                    "purl": "pkg:npm/inner@1.0",
                    "releaseNotes": {"type": "patch", "timestamp": "2020-01-02T03:04:05Z"},
                }
            ],
        },
        {"type": "library", "name": "no-purl", "version": "0.1"},
    ],
}
SPDX = {
    "spdxVersion": "SPDX-2.3",
    "SPDXID": "SPDXRef-DOCUMENT",
    "name": "shop",
    "documentDescribes": ["SPDXRef-shop"],
    "packages": [
        {"SPDXID": "SPDXRef-shop", "name": "shop", "versionInfo": "1"},
        {
            "SPDXID": "SPDXRef-requests",
            "name": "requests",
            "versionInfo": "2.30.0",
            "releaseDate": "2023-05-03T00:00:00Z",
            "externalRefs": [
                {
                    "referenceCategory": "PACKAGE-MANAGER",
                    "referenceType": "purl",
                    "referenceLocator": "pkg:pypi/requests@2.30.0",
                }
            ],
        },
    ],
}


def components(document: dict) -> list[tuple]:
    return [(c["name"], c["version"], c["purl"], c["release_date"]) for c in document["components"]]


def test_cyclonedx_json_components_nested_and_dated() -> None:
    document = read_sbom_bytes(json.dumps(CDX).encode(), "shop.cdx.json")
    assert (document["format"], document["spec_version"], document["warnings"]) == (
        "cyclonedx-json",
        "1.5",
        [],
    )
    assert components(document) == [
        ("no-purl", "0.1", None, None),
        (
            "org.apache.logging.log4j:log4j-core",
            "2.14.1",
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            "2021-03-06",
        ),
        ("inner", "1.0", "pkg:npm/inner@1.0", "2020-01-02"),
    ]  # the subject (metadata.component) is not a component
    assert len(document["sha256"]) == 64 and document["path"] == "shop.cdx.json"


def test_spdx_json_packages_without_the_described_one() -> None:
    document = read_sbom_bytes(json.dumps(SPDX).encode(), "shop.spdx.json")
    assert (document["format"], document["spec_version"]) == ("spdx-json", "2.3")
    assert components(document) == [
        ("requests", "2.30.0", "pkg:pypi/requests@2.30.0", "2023-05-03")
    ]


def test_a_sloppy_cyclonedx_document_is_read_leniently_with_a_warning() -> None:
    sloppy = {**CDX, "metadata": {"component": {"type": "", "name": ""}}}
    document = read_sbom_bytes(json.dumps(sloppy).encode(), "sloppy.cdx.json")
    assert [c["purl"] for c in document["components"]][-2:] == [
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
        "pkg:npm/inner@1.0",
    ]
    (warning,) = document["warnings"]
    assert warning.startswith("cyclonedx-python-lib refused the document (ValueError: ")
    assert warning.endswith("components were read leniently")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"SPDXVersion: SPDX-2.2\nDataLicense: CC0-1.0\n", "SPDX tag-value is not supported"),
        (b'{"@context": "https://spdx.org/rdf/3.0.0/spdx-context.jsonld", "@graph": []}',
         "SPDX 3 JSON-LD is not supported"),
        (b'{"bomFormat": "CycloneDX", "components": [{"type": "library"}]',
         "line 1, column 63: invalid JSON"),
        (b'{"name": "something else"}', "neither bomFormat CycloneDX nor spdxVersion"),
        (b"<project><name>pom</name></project>", "XML root is <project>, not a CycloneDX <bom>"),
        (b'<?xml version="1.0"?><!DOCTYPE bom [<!ENTITY x "boom">]><bom>&x;</bom>',
         "not readable XML"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"name,version\n", "neither CycloneDX (JSON or XML) nor SPDX JSON"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_refused_with_the_file_named(data: bytes, problem: str) -> None:
    with pytest.raises(SbomError) as info:
        read_sbom_bytes(data, "input.json")
    assert str(info.value).startswith("input.json: ")
    assert problem in str(info.value)


def test_the_command_prints_json_or_fails_with_status_2(tmp_path: Path, capsys) -> None:
    good = tmp_path / "shop.cdx.json"
    good.write_text(json.dumps(CDX))
    assert main([str(good)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["autosec_sbom_inventory"] == 1
    assert [d["path"] for d in printed["documents"]] == [str(good)]
    assert main([str(tmp_path / "missing.cdx.json")]) == 2
    assert "missing.cdx.json: not a regular file" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("autosec-sbom-reader 1 (cyclonedx-python-lib ")


# --- the shared corpus ---------------------------------------------------------------------


def test_cyclonedx_json_and_xml_of_one_project_agree(corpus: Path) -> None:
    folder = corpus / "sbom" / "CycloneDX__bom-examples" / "SBOM" / "dropwizard-1.3.15"
    as_json = read_sbom_file(folder / "bom.json")
    as_xml = read_sbom_file(folder / "bom.xml")
    assert (as_json["format"], as_xml["format"]) == ("cyclonedx-json", "cyclonedx-xml")
    assert len(as_json["components"]) == 167
    assert components(as_json) == components(as_xml)
    purls = {c["purl"] for c in as_json["components"]}
    assert "pkg:maven/org.yaml/snakeyaml@1.23?type=jar" in purls


@pytest.mark.parametrize(
    ("path", "fmt", "count", "with_purl"),
    [
        ("CycloneDX__bom-examples/SBOM/laravel-7.12.0/bom.1.1.xml", "cyclonedx-xml", 62, 62),
        ("CycloneDX__bom-examples/SBOM/juice-shop/v11.1.2/bom.json", "cyclonedx-json", 840, 840),
        ("CycloneDX__bom-examples/HBOM/PCIe-SATA-adapter-board/bom.json", "cyclonedx-json", 6, 0),
        ("CycloneDX__bom-examples/SaaSBOM/apigateway-microservices-datastores/bom.json",
         "cyclonedx-json", 0, 0),
        ("google__osv-scanner/alpine-zlib-16.cdx.json", "cyclonedx-json", 1, 1),
        ("google__osv-scanner/only-unimportant.spdx.json", "spdx-json", 1, 1),
        ("spdx__spdx-examples/software/example9/spdx2.2/appbomination.spdx.json", "spdx-json",
         6, 4),
    ],
)  # fmt: skip
def test_corpus_sboms(corpus: Path, path: str, fmt: str, count: int, with_purl: int) -> None:
    document = read_sbom_file(corpus / "sbom" / path)
    assert document["format"] == fmt
    assert len(document["components"]) == count
    assert sum(1 for c in document["components"] if c["purl"]) == with_purl


def test_corpus_formats_that_are_refused(corpus: Path) -> None:
    spdx = corpus / "sbom" / "spdx__spdx-examples" / "software"
    with pytest.raises(SbomError, match="SPDX tag-value is not supported"):
        read_sbom_file(spdx / "example1" / "spdx2.2" / "example1.spdx")
    with pytest.raises(SbomError, match="SPDX 3 JSON-LD is not supported"):
        read_sbom_file(spdx / "example11" / "spdx3.0" / "sbom.spdx3.json")
