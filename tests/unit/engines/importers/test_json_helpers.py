"""The shared JSON, package and severity helpers the package-report importers are built on."""

from __future__ import annotations

import io

import pytest

from autosec.domain.models import Severity
from autosec.engines.importers.base import (
    JSON_END,
    JSON_START,
    ImportFormatError,
    JsonValues,
    advisory_ids,
    cvss_base_score,
    json_outline,
    package_purl,
    severity_from_cvss,
    versionless_purl,
)


def test_an_outline_sees_nested_members_of_a_head_cut_mid_document() -> None:
    head = b'{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "CodeQL", "rul'
    outline = json_outline(head)
    assert outline is not None
    assert outline.kind == "object"
    assert {"version", "runs", "runs.item.tool", "runs.item.tool.driver"} <= outline.paths
    assert outline.values["version"] == "2.1.0"
    assert outline.values["runs.item.tool.driver.name"] == "CodeQL"
    assert outline.complete is False
    assert outline.top_level() == {"version", "runs"}


def test_an_outline_of_json_lines_reads_the_first_record_only() -> None:
    outline = json_outline(b'{"template-id": "a"}\n{"other": 1}\n')
    assert outline is not None
    assert outline.complete is True
    assert outline.paths == {"template-id"}


@pytest.mark.parametrize(("head", "kind"), [(b"null", "null"), (b"[1]", "array"), (b"7", "scalar")])
def test_an_outline_names_the_top_level_kind(head: bytes, kind: str) -> None:
    outline = json_outline(head)
    assert outline is not None and outline.kind == kind


@pytest.mark.parametrize("head", [b"", b"<?xml version='1.0'?>", b"not json"])
def test_what_is_not_json_has_no_outline(head: bytes) -> None:
    assert json_outline(head) is None


def test_values_are_built_one_at_a_time_with_their_bounds_and_paths() -> None:
    document = b'{"a": [{"x": 1, "list": [{"k": 1}, {"k": 2}]}, {"x": 2, "list": [{"k": 3}]}]}'
    values = JsonValues(
        io.BytesIO(document), "doc.json", ["a.item.x", "a.item.list.item"], ["a.item"]
    )
    seen = []
    for prefix, value in values:
        seen.append((prefix, value))
        if value == {"k": 3}:
            assert values.where(prefix) == "a[1].list[0]"
        if value == {"k": 2}:
            assert values.where(prefix) == "a[0].list[1]"
    assert seen == [
        ("a.item", JSON_START),
        ("a.item.x", 1),
        ("a.item.list.item", {"k": 1}),
        ("a.item.list.item", {"k": 2}),
        ("a.item", JSON_END),
        ("a.item", JSON_START),
        ("a.item.x", 2),
        ("a.item.list.item", {"k": 3}),
        ("a.item", JSON_END),
    ]
    assert values.kind == "object"


def test_a_scalar_where_a_container_is_bounded_is_handed_out_to_be_refused() -> None:
    values = JsonValues(io.BytesIO(b'{"a": ["start"]}'), "doc.json", [], ["a.item"])
    assert list(values) == [("a.item", "start")]  # the string, never mistaken for the marker
    error = values.error("a result is a string", "a.item")
    assert isinstance(error, ImportFormatError)
    assert str(error) == "doc.json at a[0]: a result is a string"


def test_numbers_come_out_as_int_and_float() -> None:
    values = JsonValues(io.BytesIO(b'{"s": 9.8, "n": 3}'), "d.json", ["s", "n"])
    assert [(type(v), v) for _, v in values] == [(float, 9.8), (int, 3)]


@pytest.mark.parametrize(
    ("purl", "expected"),
    [
        ("pkg:deb/debian/curl@7.88.1-10?arch=amd64&distro=debian-12", "pkg:deb/debian/curl"),
        ("pkg:PyPI/Django_Rest@1.0#sub/path", "pkg:pypi/django-rest"),
        ("pkg:npm/%40babel/traverse@7.22.5", "pkg:npm/%40babel/traverse"),
        ("not a purl", None),
        ("", None),
        (None, None),
        ({"PURL": "pkg:npm/x@1"}, None),
    ],
)
def test_a_package_url_loses_version_qualifiers_and_subpath(purl: object, expected: str) -> None:
    assert versionless_purl(purl) == expected


def test_a_package_url_is_built_normalised_or_not_at_all() -> None:
    assert package_purl("pypi", "Flask_Login") == "pkg:pypi/flask-login"
    assert package_purl("maven", "commons-text", "org.apache.commons") == (
        "pkg:maven/org.apache.commons/commons-text"
    )
    assert package_purl("npm", "") is None


def test_advisory_ids_are_found_normalised_and_ordered() -> None:
    assert advisory_ids(
        "ghsa-H5C8-RQWP-CP95", "see cve-2024-22195 and CVE-2023-1234", None, 7, "PYSEC-2024-5"
    ) == ("CVE-2023-1234", "CVE-2024-22195", "GHSA-h5c8-rqwp-cp95")


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, Severity.INFO),
        (0.1, Severity.LOW),
        (3.9, Severity.LOW),
        (4.0, Severity.MEDIUM),
        ("6.9", Severity.MEDIUM),
        (7.0, Severity.HIGH),
        (8.9, Severity.HIGH),
        (9.0, Severity.CRITICAL),
        (10, Severity.CRITICAL),
        (10.1, None),
        (-1, None),
        ("high", None),
        (None, None),
        (True, None),
    ],
)
def test_cvss_scores_map_to_the_qualitative_ratings(score: object, expected: Severity) -> None:
    assert severity_from_cvss(score) == expected


@pytest.mark.parametrize(
    ("vector", "score"),
    [
        ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
        ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
        ("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3),
        ("CVSS:3.1/AV:N", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_cvss_vectors_give_their_base_score(vector: object, score: float | None) -> None:
    assert cvss_base_score(vector) == score
