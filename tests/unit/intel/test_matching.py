"""Matching package URLs against advisories: ranges, versions lists, aliases, unknowns."""

from __future__ import annotations

from typing import Any

import pytest

from autosec.intel.matching import (
    AdvisoryIndex,
    Component,
    MatchStatus,
    component_from_purl,
    match_component,
    match_components,
    package_key,
    range_as_vers,
)
from autosec.intel.osv import Advisory, iter_osv, parse_osv_record
from tests_support import REPO_ROOT

CORPUS = REPO_ROOT.parent / "shared" / "corpus"


def advisory(
    advisory_id: str,
    *events: dict[str, str],
    ecosystem: str = "PyPI",
    name: str = "demo",
    range_type: str = "ECOSYSTEM",
    versions: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    withdrawn: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Advisory:
    entry: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": name}}
    if events:
        entry["ranges"] = [{"type": range_type, "events": list(events)}]
        if range_type == "GIT":
            entry["ranges"][0]["repo"] = "https://example.org/demo.git"
    if versions:
        entry["versions"] = list(versions)
    entry.update(extra or {})
    record: dict[str, Any] = {
        "id": advisory_id,
        "modified": "2024-01-01T00:00:00Z",
        "aliases": list(aliases),
        "affected": [entry],
    }
    if withdrawn:
        record["withdrawn"] = withdrawn
    return parse_osv_record(record, f"{advisory_id}.json")


def judge(purl: str, *advisories: Advisory):
    return match_component(component_from_purl(purl), advisories)


def only(matches):
    assert len(matches) == 1, matches
    return matches[0]


# --- ranges ---------------------------------------------------------------------------------


def test_introduced_fixed_is_a_half_open_interval() -> None:
    record = advisory("A-1", {"introduced": "1.5"}, {"fixed": "1.10.0"}, ecosystem="Maven",
                      name="org.example:lib")  # fmt: skip
    base = "pkg:maven/org.example/lib@"
    assert judge(base + "1.4", record) == []
    assert only(judge(base + "1.5", record)).fixed_versions == ("1.10.0",)
    assert only(judge(base + "1.9", record)).status is MatchStatus.AFFECTED  # 9 < 10, not "9" > "1"
    assert judge(base + "1.10.0", record) == []
    assert judge(base + "1.10", record) == []  # Maven: 1.10 == 1.10.0


def test_events_in_any_order_and_several_intervals() -> None:
    """Real records list events unordered; each introduced opens its own interval."""
    record = advisory(
        "A-2",
        {"introduced": "2.16.0"}, {"fixed": "2.16.3"},
        {"introduced": "2.15.0"}, {"fixed": "2.15.9"},
        {"introduced": "0"}, {"fixed": "2.14.4"},
    )  # fmt: skip
    expected = {
        "2.14.3": ("2.14.4",),
        "2.14.4": None,
        "2.15.0": ("2.15.9",),
        "2.15.9": None,
        "2.16.2": ("2.16.3",),
        "2.16.3": None,
        "2.17.0": None,
    }
    for version, fixed in expected.items():
        matches = judge(f"pkg:pypi/demo@{version}", record)
        assert (only(matches).fixed_versions if matches else None) == fixed, version


def test_a_fix_at_the_start_of_another_interval_does_not_close_it() -> None:
    """[0, 3.1.1) + [3.2.0, 3.2.2) + [3.1.1, 3.2.0): 3.1.1 is affected (fixed in 3.2.0)."""
    record = advisory(
        "A-3",
        {"introduced": "0"}, {"fixed": "3.1.1"},
        {"introduced": "3.2.0"}, {"fixed": "3.2.2"},
        {"introduced": "3.1.1"}, {"fixed": "3.2.0"},
    )  # fmt: skip
    assert only(judge("pkg:pypi/demo@3.1.1", record)).fixed_versions == ("3.2.0",)
    assert only(judge("pkg:pypi/demo@3.2.1", record)).fixed_versions == ("3.2.2",)
    assert judge("pkg:pypi/demo@3.2.2", record) == []


def test_last_affected_is_inclusive_and_names_no_fix() -> None:
    record = advisory("A-4", {"introduced": "0"}, {"last_affected": "1.11.0"})
    match = only(judge("pkg:pypi/demo@1.11.0", record))
    assert match.fixed_versions == ()
    assert match.notes == ("no fix named; last affected version 1.11.0",)
    assert judge("pkg:pypi/demo@1.11.1", record) == []


def test_pep440_pre_releases_order_before_the_release() -> None:
    record = advisory("A-5", {"introduced": "0"}, {"fixed": "2.0.0"})
    assert only(judge("pkg:pypi/demo@2.0.0rc1", record)).status is MatchStatus.AFFECTED
    assert judge("pkg:pypi/demo@2.0.0.post1", record) == []


def test_semver_ranges_use_semver_ordering() -> None:
    record = advisory("A-6", {"introduced": "1.2.0"}, {"fixed": "1.10.0"}, ecosystem="Go",
                      name="github.com/example/mod", range_type="SEMVER")  # fmt: skip
    assert only(judge("pkg:golang/github.com/example/mod@v1.9.3", record)).fixed_versions == (
        "1.10.0",
    )
    assert judge("pkg:golang/github.com/example/mod@v1.10.0", record) == []


def test_an_explicit_versions_list_matches_by_equality() -> None:
    record = advisory("A-7", versions=("0.5", "1.0"))
    match = only(judge("pkg:pypi/demo@1.0.0", record))  # PEP 440: 1.0.0 == 1.0
    assert match.notes == ("listed in the advisory's versions",)
    assert judge("pkg:pypi/demo@0.6", record) == []


# --- what is not matched, and what is unknown ---------------------------------------------


def test_withdrawn_advisories_are_ignored() -> None:
    record = advisory("A-8", {"introduced": "0"}, withdrawn="2024-02-01T00:00:00Z")
    assert judge("pkg:pypi/demo@1.0", record) == []


def test_a_git_only_range_is_an_explicit_unknown() -> None:
    record = advisory("A-9", {"introduced": "0"}, {"fixed": "abc123"}, range_type="GIT")
    match = only(judge("pkg:pypi/demo@1.0", record))
    assert match.status is MatchStatus.UNKNOWN
    assert match.advisory_ids == ("A-9",)
    assert match.notes == (
        "only commit (GIT) ranges in https://example.org/demo.git: version 1.0 cannot be placed",
    )


def test_a_git_range_with_a_versions_list_is_decided_by_the_list() -> None:
    record = advisory(
        "A-10", {"introduced": "0"}, {"fixed": "abc123"}, range_type="GIT", versions=("1.0",)
    )
    assert only(judge("pkg:pypi/demo@1.0", record)).status is MatchStatus.AFFECTED
    assert judge("pkg:pypi/demo@2.0", record) == []


def test_unorderable_versions_and_ecosystems_are_unknown() -> None:
    record = advisory("A-11", {"introduced": "0"}, {"fixed": "2.0"})
    match = only(judge("pkg:pypi/demo@not-a-version", record))
    assert match.status is MatchStatus.UNKNOWN
    assert match.notes == ("'not-a-version' is not a valid pypi version",)
    hackage = advisory("A-12", {"introduced": "0"}, {"fixed": "2.0"}, ecosystem="Hackage")
    match = only(judge("pkg:hackage/demo@1.0", hackage))
    assert match.status is MatchStatus.UNKNOWN
    assert "no version ordering" in match.notes[0]
    assert only(judge("pkg:pypi/demo", record)).notes == ("the component has no version",)


def test_a_decided_record_drops_an_undecidable_alias() -> None:
    """The GHSA says 2.0 is not affected; the PYSEC alias has only commits: no unknown left."""
    ghsa = advisory("GHSA-x", {"introduced": "0"}, {"fixed": "1.5"}, aliases=("CVE-2099-1",))
    pysec = advisory("PYSEC-x", {"introduced": "0"}, {"fixed": "abc"}, range_type="GIT",
                     aliases=("CVE-2099-1", "GHSA-x"))  # fmt: skip
    assert judge("pkg:pypi/demo@2.0", ghsa, pysec) == []


def test_last_known_affected_version_range_never_overrides_the_events() -> None:
    hint = {"database_specific": {"last_known_affected_version_range": "<= 1.33"}}
    fixed = advisory("A-13", {"introduced": "0"}, {"fixed": "2.0"}, ecosystem="Maven",
                     name="org.example:yaml", extra=hint)  # fmt: skip
    assert only(judge("pkg:maven/org.example/yaml@1.33", fixed)).fixed_versions == ("2.0",)
    assert judge("pkg:maven/org.example/yaml@2.0", fixed) == []
    unfixed = advisory("A-14", {"introduced": "0"}, ecosystem="Maven", name="org.example:yaml",
                       extra=hint)  # fmt: skip
    assert only(judge("pkg:maven/org.example/yaml@1.20", unfixed)).notes == ("no fix named",)
    beyond = only(judge("pkg:maven/org.example/yaml@1.40", unfixed))
    assert beyond.status is MatchStatus.AFFECTED
    assert beyond.notes == (
        "no fix named",
        "above the last version known to be affected (<= 1.33); no fix is named",
    )


# --- aliases --------------------------------------------------------------------------------


def test_alias_records_merge_into_one_match_with_every_id() -> None:
    ghsa = advisory("GHSA-m", {"introduced": "2.3.0"}, {"fixed": "2.31.0"}, aliases=("CVE-2023-1",))
    pysec = advisory("PYSEC-m", {"introduced": "2.3.0"}, {"fixed": "2.31.0"},
                     aliases=("CVE-2023-1", "GHSA-m"))  # fmt: skip
    other = advisory("PYSEC-o", {"introduced": "0"}, {"fixed": "3.0"}, aliases=("CVE-2023-9",))
    matches = judge("pkg:pypi/demo@2.30.0", ghsa, pysec, other)
    assert [(m.advisory_ids, m.ids, m.fixed_versions) for m in matches] == [
        (("GHSA-m", "PYSEC-m"), ("CVE-2023-1", "GHSA-m", "PYSEC-m"), ("2.31.0",)),
        (("PYSEC-o",), ("CVE-2023-9", "PYSEC-o"), ("3.0",)),
    ]
    assert matches[0].cve_ids == ("CVE-2023-1",)
    assert matches[0].primary_id == "GHSA-m"


# --- package identity -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("purl", "ecosystem", "name", "version", "release"),
    [
        ("pkg:pypi/Demo_Lib@1.0", "PyPI", "demo-lib", "1.0", None),  # purl normalises pypi
        ("pkg:maven/org.apache.commons/commons-text@1.9?type=jar", "Maven",
         "org.apache.commons:commons-text", "1.9", None),
        ("pkg:npm/%40angular/core@1.0.0", "npm", "@angular/core", "1.0.0", None),
        ("pkg:golang/github.com/Masterminds/semver/v3@v3.1.0", "Go",
         "github.com/Masterminds/semver/v3", "v3.1.0", None),
        ("pkg:deb/ubuntu/libpcre3@2%3A8.39-12?arch=amd64&distro=focal&source=pcre3", "Ubuntu",
         "pcre3", "2:8.39-12", "focal"),
        ("pkg:apk/alpine/zlib@1.2.12-r1?distro=3.22.0&origin=zlib", "Alpine", "zlib",
         "1.2.12-r1", "3.22.0"),
    ],
)  # fmt: skip
def test_package_urls_name_osv_packages(
    purl: str, ecosystem: str, name: str, version: str, release: str | None
) -> None:
    assert component_from_purl(purl) == Component(purl, ecosystem, name, version, release)


def test_unusable_package_urls_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="invalid package URL 'not-a-purl'"):
        component_from_purl("not-a-purl")
    with pytest.raises(ValueError, match="no OSV ecosystem for purl type 'generic'"):
        component_from_purl("pkg:generic/thing@1.0")


def test_pypi_names_match_in_their_normal_form() -> None:
    assert (
        package_key("PyPI", "Demo_Lib") == package_key("PyPI", "demo.lib") == ("PyPI", "demo-lib")
    )
    assert package_key("Debian:11", "openssl") == ("Debian", "openssl")
    record = advisory("A-15", {"introduced": "0"}, {"fixed": "2.0"}, name="Demo.Lib")
    index = AdvisoryIndex([record])
    assert [m.advisory_ids for m in match_components(
        [component_from_purl("pkg:pypi/demo-lib@1.0")], index.lookup
    )] == [("A-15",)]  # fmt: skip


def test_os_advisories_for_another_release_do_not_match() -> None:
    record = advisory("A-16", {"introduced": "0"}, {"fixed": "1.2.13-r0"},
                      ecosystem="Alpine:v3.16", name="zlib")  # fmt: skip
    assert judge("pkg:apk/alpine/zlib@1.2.12-r1?distro=3.22.0", record) == []
    assert only(judge("pkg:apk/alpine/zlib@1.2.12-r1?distro=3.16.2", record)).fixed_versions == (
        "1.2.13-r0",
    )


def test_the_index_keeps_the_newest_copy_of_a_record() -> None:
    old = advisory("A-17", {"introduced": "0"}, {"fixed": "1.0"})
    new = parse_osv_record(
        {**_record_of(old), "modified": "2025-01-01T00:00:00Z", "affected": []}, "new"
    )
    index = AdvisoryIndex([new, old])
    assert len(index) == 1
    assert index.lookup([("PyPI", "demo")]) == []


def _record_of(item: Advisory) -> dict[str, Any]:
    return item.to_dict()


def test_simple_ranges_read_as_vers() -> None:
    record = advisory("A-18", {"introduced": "1.5"}, {"fixed": "1.10.0"}, ecosystem="Maven",
                      name="org.example:lib")  # fmt: skip
    assert range_as_vers(record.affected[0].ranges[0], "Maven") == "vers:maven/>=1.5|<1.10.0"


# --- the shared corpus ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_index() -> AdvisoryIndex:
    if not (CORPUS / "osv").is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return AdvisoryIndex(iter_osv(CORPUS / "osv"))


def corpus_matches(index: AdvisoryIndex, purl: str):
    return match_components([component_from_purl(purl)], index.lookup)


def test_log4j_core_2_14_1_is_log4shell_fixed_in_2_15_0(corpus_index: AdvisoryIndex) -> None:
    match = only(
        corpus_matches(corpus_index, "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1")
    )
    assert match.advisory_ids == ("GHSA-jfh8-c2jp-5v3q",)
    assert match.ids == ("CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q")
    assert match.fixed_versions == ("2.15.0",)
    older = only(corpus_matches(corpus_index, "pkg:maven/org.apache.logging.log4j/log4j-core@2.1"))
    assert older.fixed_versions == ("2.3.1",)  # the backport interval [0, 2.3.1)
    assert (
        corpus_matches(corpus_index, "pkg:maven/org.apache.logging.log4j/log4j-core@2.15.0") == []
    )


@pytest.mark.parametrize(
    ("version", "affected"), [("1.4", False), ("1.5", True), ("1.9", True), ("1.10.0", False)]
)
def test_commons_text_compares_numerically(
    corpus_index: AdvisoryIndex, version: str, affected: bool
) -> None:
    matches = corpus_matches(corpus_index, f"pkg:maven/org.apache.commons/commons-text@{version}")
    assert [(m.advisory_ids, m.fixed_versions) for m in matches] == (
        [(("GHSA-599f-7c49-w659",), ("1.10.0",))] if affected else []
    )


def test_a_withdrawn_pysec_is_ignored(corpus_index: AdvisoryIndex) -> None:
    """PYSEC-2020-221 (withdrawn) names every ansible version; it must not match."""
    ids = {i for m in corpus_matches(corpus_index, "pkg:pypi/ansible@2.9.0") for i in m.ids}
    assert "PYSEC-2020-221" not in ids
    assert {"PYSEC-2021-126", "PYSEC-2021-358", "PYSEC-2022-164"} <= ids


def test_ghsa_and_pysec_for_one_cve_are_one_match(corpus_index: AdvisoryIndex) -> None:
    match = only(corpus_matches(corpus_index, "pkg:pypi/requests@2.30.0"))
    assert match.advisory_ids == ("GHSA-j8r2-6x86-q33q", "PYSEC-2023-74")
    assert match.ids == ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q", "PYSEC-2023-74")
    assert match.fixed_versions == ("2.31.0",)


def test_corpus_last_affected_and_versions_only_records(corpus_index: AdvisoryIndex) -> None:
    py = only(corpus_matches(corpus_index, "pkg:pypi/py@1.11.0"))
    assert (py.advisory_ids, py.fixed_versions) == (("PYSEC-2022-42969",), ())
    assert corpus_matches(corpus_index, "pkg:pypi/py@1.11.1") == []
    gratient = only(corpus_matches(corpus_index, "pkg:pypi/gratient@0.5"))
    assert gratient.advisory_ids == ("PYSEC-2024-1",)
    assert corpus_matches(corpus_index, "pkg:pypi/gratient@0.6") == []


def test_corpus_multi_range_records(corpus_index: AdvisoryIndex) -> None:
    urllib3 = {
        m.primary_id: m.fixed_versions
        for m in corpus_matches(corpus_index, "pkg:pypi/urllib3@2.0.5")
    }
    assert urllib3["GHSA-34jh-p97f-mpxf"] == ("2.2.2",)
    assert ("2.0.6",) in urllib3.values()  # PYSEC-2023-192's 2.x interval
    snakeyaml = only(corpus_matches(corpus_index, "pkg:maven/org.yaml/snakeyaml@1.33"))
    assert (snakeyaml.advisory_ids, snakeyaml.fixed_versions) == (
        ("GHSA-mjmj-j48q-9wg2",),
        ("2.0",),
    )
