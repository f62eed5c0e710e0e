"""The CISA KEV catalog (JSON, CSV), EPSS scores (CSV, gzip), feed freshness and the config."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from autosec.intel.config import IntelConfig, OsvFeedSource
from autosec.intel.epss import EpssError, EpssReader, EpssScore
from autosec.intel.feeds import feed_age_days, staleness_warning
from autosec.intel.kev import KevError, parse_kev_csv, parse_kev_json, read_kev

ENTRY = {
    "cveID": "CVE-2021-44228",
    "vendorProject": "Apache",
    "product": "Log4j2",
    "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability",
    "dateAdded": "2021-12-10",
    "shortDescription": "JNDI lookups run attacker code.",
    "requiredAction": "Apply updates.",
    "dueDate": "2021-12-24",
    "knownRansomwareCampaignUse": "Known",
    "notes": "https://nvd.nist.gov/vuln/detail/CVE-2021-44228",
    "cwes": ["CWE-20", "CWE-917"],
}


def catalog(*entries: dict, **top) -> bytes:
    document = {
        "title": "CISA Catalog of Known Exploited Vulnerabilities",
        "catalogVersion": "2025.08.25",
        "dateReleased": "2025-08-25T17:04:19.9796Z",
        "count": len(entries),
        "vulnerabilities": list(entries),
        **top,
    }
    return json.dumps(document).encode()


# --- KEV ------------------------------------------------------------------------------------


def test_a_kev_json_catalog_is_read_and_typed() -> None:
    kev = parse_kev_json(catalog(ENTRY), "kev.json")
    (entry,) = kev.entries
    assert (entry.cve_id, entry.date_added, entry.due_date) == (
        "CVE-2021-44228",
        date(2021, 12, 10),
        date(2021, 12, 24),
    )
    assert entry.ransomware is True
    assert entry.cwes == ("CWE-20", "CWE-917")
    assert kev.version == "2025.08.25"
    assert kev.feed_date == datetime(2025, 8, 25, 17, 4, 19, 979600, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cveID": "CVE-21-1"}, "(CVE-21-1): cveID 'CVE-21-1' is not CVE-YYYY-NNNN"),
        ({"dueDate": "24/12/2021"}, "(CVE-2021-44228): dueDate '24/12/2021' is not a YYYY-MM-DD"),
        ({"product": ""}, "vulnerabilities[1] (CVE-2021-44228): product is missing or empty"),
        ({"cwes": ["NVD-CWE-noinfo"]}, "cwes: ['NVD-CWE-noinfo'] are not CWE-N"),
    ],
)
def test_a_malformed_kev_entry_names_the_file_and_the_entry(change: dict, problem: str) -> None:
    good = {**ENTRY, "cveID": "CVE-2020-0001"}
    with pytest.raises(KevError) as info:
        parse_kev_json(catalog(good, {**ENTRY, **change}), "kev.json")
    assert str(info.value).startswith("kev.json: vulnerabilities[1]")
    assert problem in str(info.value)


def test_a_cut_short_or_duplicated_catalog_is_refused() -> None:
    with pytest.raises(KevError, match="says count 3 but lists 1 entries"):
        parse_kev_json(catalog(ENTRY, count=3), "kev.json")
    with pytest.raises(KevError, match="CVE-2021-44228 is listed twice"):
        parse_kev_json(catalog(ENTRY, ENTRY), "kev.json")
    with pytest.raises(KevError, match=r"kev\.json: line 1, column \d+: invalid JSON"):
        parse_kev_json(b'{"vulnerabilities": [', "kev.json")


def test_a_kev_csv_is_dated_by_its_newest_entry_and_errors_name_the_line() -> None:
    header = ",".join(ENTRY)
    row = ",".join(
        f'"{v}"' if not isinstance(v, list) else '"CWE-20, CWE-917"' for v in ENTRY.values()
    )
    kev = parse_kev_csv(f"\ufeff{header}\r\n{row}\r\n", "kev.csv")
    assert kev.entries[0].cwes == ("CWE-20", "CWE-917")
    assert kev.catalog_version is None and kev.version == "2021.12.10"
    assert kev.feed_date == datetime(2021, 12, 10, tzinfo=UTC)
    bad = row.replace("2021-12-24", "soon")
    with pytest.raises(KevError, match=r"kev\.csv: line 3 \(CVE-2021-44228\): dueDate 'soon'"):
        parse_kev_csv(f"{header}\n{row.replace('44228', '44229')}\n{bad}\n", "kev.csv")
    with pytest.raises(KevError, match=r"kev\.csv: line 1: header lacks dueDate"):
        parse_kev_csv(header.replace("dueDate", "due"), "kev.csv")


def test_the_corpus_kev_catalogs(corpus: Path) -> None:
    folder = corpus / "kev" / "cisagov__kev-data"
    newest = read_kev(folder / "known_exploited_vulnerabilities.json")
    assert (newest.version, len(newest.entries)) == ("2025.08.25", 1404)
    as_csv = read_kev(folder / "known_exploited_vulnerabilities.csv")
    assert {e.cve_id: e for e in as_csv.entries} == {e.cve_id: e for e in newest.entries}
    older = read_kev(folder / "known_exploited_vulnerabilities.2025-01-27.json")
    assert (older.version, len(older.entries)) == ("2025.01.24", 1252)
    log4shell = next(e for e in newest.entries if e.cve_id == "CVE-2021-44228")
    assert (log4shell.date_added, log4shell.due_date) == (date(2021, 12, 10), date(2021, 12, 24))
    assert log4shell.vendor_project == "Apache"
    assert sum(e.ransomware for e in newest.entries) == 293


# --- EPSS -----------------------------------------------------------------------------------

EPSS = (
    "#model_version:v2026.06.15,score_date:2026-09-29T12:00:22Z\n"
    "cve,epss,percentile\n"
    "CVE-1999-0001,0.03351,0.88255\n"
    "CVE-2022-41040,0.99956,0.99974\n"
)


def read_all(path: Path) -> tuple[EpssReader, list[EpssScore]]:
    with EpssReader(path) as reader:
        return reader, list(reader)


def test_epss_scores_and_their_model_and_date(tmp_path: Path) -> None:
    path = tmp_path / "epss.csv"
    path.write_text(EPSS)
    reader, scores = read_all(path)
    assert reader.model_version == "v2026.06.15"
    assert reader.score_date == datetime(2026, 9, 29, 12, 0, 22, tzinfo=UTC)
    assert scores == [
        EpssScore("CVE-1999-0001", 0.03351, 0.88255),
        EpssScore("CVE-2022-41040", 0.99956, 0.99974),
    ]
    assert reader.rows == 2


def test_gzip_bom_and_crlf_are_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "epss.csv.gz"
    path.write_bytes(gzip.compress(("\ufeff" + EPSS.replace("\n", "\r\n")).encode()))
    reader, scores = read_all(path)
    assert reader.model_version == "v2026.06.15" and len(scores) == 2


def test_a_file_without_the_comment_line_has_no_date(tmp_path: Path) -> None:
    path = tmp_path / "epss.csv"
    path.write_text(EPSS.split("\n", 1)[1])
    reader, scores = read_all(path)
    assert (reader.model_version, reader.score_date, len(scores)) == (None, None, 2)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("cve,score\n", "line 2: expected the header 'cve,epss,percentile'"),
        ("cve,epss,percentile\nCVE-1,0.1,0.2\n", "line 3: 'CVE-1' is not a CVE id"),
        ("cve,epss,percentile\nCVE-2020-0001,high,0.2\n", "line 3: epss 'high' is not a number"),
        ("cve,epss,percentile\nCVE-2020-0001,0.1,1.2\n", "line 3: percentile 1.2 is outside 0..1"),
        ("cve,epss,percentile\nCVE-2020-0001,nan,0.2\n", "line 3: epss nan is outside 0..1"),
        ("cve,epss,percentile\nCVE-2020-0001,0.1\n", "line 3: expected 3 fields"),
        (
            "cve,epss,percentile\nCVE-2020-0001,0.1,0.2\nCVE-2020-0001,0.1,0.2\n",
            "line 4: CVE-2020-0001 is listed twice",
        ),
    ],
)
def test_malformed_epss_names_the_file_and_line(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "epss.csv"
    path.write_text("#model_version:v1,score_date:2026-01-01T00:00:00Z\n" + body)
    with pytest.raises(EpssError) as info:
        read_all(path)
    assert str(info.value) == f"{path}: {problem}" or str(info.value).startswith(
        f"{path}: {problem}"
    )


def test_rows_stream_before_a_later_error(tmp_path: Path) -> None:
    """Rows are yielded one by one: the first arrives before the bad third line is read."""
    path = tmp_path / "epss.csv"
    path.write_text("cve,epss,percentile\nCVE-2020-0001,0.1,0.2\nbroken\n")
    with EpssReader(path) as reader:
        rows = iter(reader)
        assert next(rows) == EpssScore("CVE-2020-0001", 0.1, 0.2)
        with pytest.raises(EpssError, match="line 3"):
            next(rows)


def test_the_corpus_epss_slices(corpus: Path) -> None:
    folder = corpus / "epss" / "lodestonesecurity__epss-data-history"
    reader, head = read_all(folder / "epss_scores-current.head100.csv")
    assert (reader.model_version, len(head)) == ("v2026.06.15", 100)
    ids = {s.cve_id for s in head}
    assert "CVE-1999-0020" not in ids and {"CVE-1999-0001", "CVE-1999-0101"} <= ids
    _, sliced = read_all(folder / "epss_scores-current.slice-CVE-2022-41000_41158.csv")
    assert len(sliced) == 137
    assert next(s for s in sliced if s.cve_id == "CVE-2022-41040") == EpssScore(
        "CVE-2022-41040", 0.99956, 0.99974
    )


# --- freshness and configuration ------------------------------------------------------------

NOW = datetime(2025, 9, 3, 12, tzinfo=UTC)


def test_a_feed_older_than_the_limit_gets_the_warning_text() -> None:
    assert feed_age_days(datetime(2025, 8, 25, 17, tzinfo=UTC), NOW) == 8
    assert staleness_warning("kev", datetime(2025, 8, 25, 17, tzinfo=UTC), NOW, 7) == (
        "kev feed is 8 days old (its data is from 2025-08-25; the limit is 7 days)"
    )
    assert staleness_warning("kev", datetime(2025, 8, 27, tzinfo=UTC), NOW, 7) is None
    assert staleness_warning("epss", date(2025, 8, 1), NOW, 30) == (
        "epss feed is 33 days old (its data is from 2025-08-01; the limit is 30 days)"
    )
    assert staleness_warning("osv:pypi", None, NOW, 7) == (
        "osv:pypi feed has never been loaded: no data to match or enrich with"
    )
    assert feed_age_days(datetime(2025, 9, 4, tzinfo=UTC), NOW) == 0  # a clock a little behind


def test_the_intel_config_checks_urls_names_and_zip_paths() -> None:
    config = IntelConfig()
    assert [f.name for f in config.osv] == ["local"] and config.max_age_days == 7
    with pytest.raises(ValidationError, match="is not an http"):
        IntelConfig(kev={"path": "kev.json", "url": "file:///etc/passwd"})
    with pytest.raises(ValidationError, match="carries credentials"):
        IntelConfig(kev={"path": "kev.json", "url": "https://user:pw@example.org/kev.json"})
    with pytest.raises(ValidationError, match=r"path must end in \.zip"):
        OsvFeedSource(name="pypi", path="osv", url="https://example.org/PyPI/all.zip")
    with pytest.raises(ValidationError, match="names must be unique"):
        IntelConfig(osv=[{"name": "a", "path": "a"}, {"name": "a", "path": "b"}])
    with pytest.raises(ValidationError, match="Extra inputs"):
        IntelConfig(max_age=3)
