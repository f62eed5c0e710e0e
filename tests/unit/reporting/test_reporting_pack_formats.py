"""Every file of a pack, read back: the POA&M CSV and XLSX, OCSF, SARIF, HTML, PDF, manifest.
And reproducibility: the same pack gives byte-identical files, in this process and in a fresh
interpreter with another hash seed."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from datetime import datetime

import openpyxl
import pytest

from autosec.reporting.findings_csv import FINDING_COLUMNS
from autosec.reporting.ocsf import render_ocsf
from autosec.reporting.pack_html import render_pack_html
from autosec.reporting.packs import TABLE_LIMIT, Pack
from autosec.reporting.pdf import nice_step, render_pack_pdf
from autosec.reporting.pieces import PIECES, render_pack
from autosec.reporting.poam import POAM_COLUMNS
from autosec.reporting.sarif import render_sarif, sarif_log
from autosec.reporting.xlsx import (
    AFFECTED_SHEET,
    CELL_LIMIT,
    CLOSED_SHEET,
    OPEN_SHEET,
    SHEETS,
    render_poam_xlsx,
)
from tests_support import REPO_ROOT
from unit.reporting.pack_rows import (
    HOSTILE_ASSET,
    HOSTILE_TITLE,
    KEV_CVE,
    POLICY_HASH,
    PRODUCT_VERSION,
    finding_row,
    make_pack,
)


@pytest.fixture(scope="module")
def pack() -> Pack:
    return make_pack()


@pytest.fixture(scope="module")
def pieces(pack: Pack) -> dict[str, bytes]:
    return {p.name: p.content for p in render_pack(pack, PRODUCT_VERSION)}


def pdf_pages(raw: bytes) -> int:
    """Page objects in a PDF (ReportLab writes them uncompressed, outside object streams)."""
    return len(re.findall(rb"/Type /Page(?![s\w])", raw))


# --------------------------------------------------------------------------- POA&M CSV


def test_the_poam_csv_has_one_row_per_open_vulnerability(pieces) -> None:
    reader = csv.DictReader(io.StringIO(pieces["poam_csv"].decode("utf-8"), newline=""))
    rows = list(reader)
    assert reader.fieldnames == list(POAM_COLUMNS)
    assert len(rows) == 4  # Apache (2 assets), weak SSH (2 assets), the old low, the hostile low
    apache = next(r for r in rows if r["CVE"] == KEV_CVE)
    assert apache["Scheduled Completion Date"] == "2021-11-17"
    assert apache["Asset Identifier"].count("\n") == 1
    hostile = next(r for r in rows if "HYPERLINK" in r["Weakness Name"])
    assert hostile["Weakness Name"].startswith("'=")  # a formula is defused
    assert hostile["Point of Contact"] == "'@SUM(1+1)"


def test_the_findings_csv_lists_every_finding_with_its_poam_id(pack, pieces) -> None:
    reader = csv.reader(io.StringIO(pieces["findings_csv"].decode("utf-8"), newline=""))
    header, *rows = list(reader)
    assert header == list(FINDING_COLUMNS) and len(rows) == len(pack.findings)
    column = {name: i for i, name in enumerate(FINDING_COLUMNS)}
    by_fingerprint = {r[column["Fingerprint"]]: r for r in rows}
    items = {w.poam_id for w in (*pack.open_items, *pack.closed_items)}
    assert by_fingerprint["fp-kev-web"][column["POAM ID"]] in items
    assert (
        by_fingerprint["fp-kev-web"][column["POAM ID"]]
        == (by_fingerprint["fp-kev-db"][column["POAM ID"]])
    )  # one vulnerability, one item
    assert by_fingerprint["fp-banner"][column["POAM ID"]] == ""  # informational: no item
    assert by_fingerprint["fp-fixed-late"][column["Fix Confirmed by Rescan"]] == "yes"
    assert by_fingerprint["fp-kev-db"][column["Due Date Tier"]] == "KEV due date"
    hostile = by_fingerprint["fp-hostile"]
    assert hostile[column["Title"]].startswith("'=") and hostile[column["Owner"]] == "'@SUM(1+1)"


# --------------------------------------------------------------------------- POA&M XLSX


def test_the_workbook_opens_with_the_template_columns(pack, pieces) -> None:
    workbook = openpyxl.load_workbook(io.BytesIO(pieces["poam_xlsx"]))
    assert workbook.sheetnames == list(SHEETS)
    open_rows = list(workbook[OPEN_SHEET].iter_rows(values_only=True))
    assert list(open_rows[0]) == list(POAM_COLUMNS) and len(open_rows) == 1 + 4
    assert {r[0] for r in open_rows[1:]} == {w.poam_id for w in pack.open_items}
    closed = list(workbook[CLOSED_SHEET].iter_rows(values_only=True))
    assert [r[2] for r in closed[1:]] == ["fixed-late title", "fixed-on-time title"]
    assert [r[14] for r in closed[1:]] == ["2026-03-20", "2026-03-10"]  # Status Date: the fix
    affected = list(workbook[AFFECTED_SHEET].iter_rows(values_only=True))
    assert affected == [tuple(FINDING_COLUMNS)]  # no asset list had to be cut
    evidence = list(workbook["Evidence"].iter_rows(values_only=True))
    assert {r[0] for r in evidence[1:]} == {e.sha256 for e in pack.evidence}
    assert workbook.properties.created == datetime(2026, 3, 31)  # noqa: DTZ001 - XLSX is naive
    assert workbook.properties.modified == datetime(2026, 3, 31)  # noqa: DTZ001
    assert workbook.properties.creator == "autosec"


def test_hostile_text_stays_text_in_the_workbook(pieces) -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(pieces["poam_xlsx"]))[OPEN_SHEET]
    row = next(r for r in sheet.iter_rows() if "HYPERLINK" in str(r[2].value))
    name = row[2]
    assert name.data_type == "s"
    # defused, and without the control character XLSX cannot hold
    assert name.value == "'" + HOSTILE_TITLE.replace("\x07", "")
    assert row[POAM_COLUMNS.index("Point of Contact")].value == "'@SUM(1+1)"


def test_an_asset_list_longer_than_a_cell_is_cut_and_listed_on_its_own_sheet() -> None:
    many = [
        finding_row(
            f"wide-{i}", rule_id="nmap.same", asset_id=f"a{i}", asset_name="x" * 40 + f"-{i:05d}"
        )
        for i in range(1200)
    ]
    workbook = openpyxl.load_workbook(io.BytesIO(render_poam_xlsx(make_pack(findings=many))))
    [_, row] = list(workbook[OPEN_SHEET].iter_rows(values_only=True))
    assets = row[POAM_COLUMNS.index("Asset Identifier")]
    assert len(assets) <= CELL_LIMIT
    assert assets.endswith("every asset is on the Affected Assets sheet")
    affected = list(workbook[AFFECTED_SHEET].iter_rows(values_only=True))
    assert len(affected) == 1 + 1200 and {r[0] for r in affected[1:]} == {row[0]}


def test_the_zip_entries_carry_the_as_of_date(pieces) -> None:
    with zipfile.ZipFile(io.BytesIO(pieces["poam_xlsx"])) as archive:
        assert {i.date_time for i in archive.infolist()} == {(2026, 3, 31, 0, 0, 0)}
        assert "xl/workbook.xml" in archive.namelist()


# --------------------------------------------------------------------------------- OCSF


def test_ocsf_vulnerability_findings(pack, pieces) -> None:
    events = json.loads(pieces["findings_ocsf"])
    assert len(events) == len(pack.findings)
    for event in events:
        assert (event["class_uid"], event["category_uid"]) == (2002, 2)
        assert event["type_uid"] == 2002 * 100 + event["activity_id"]
        assert {"uid", "title", "first_seen_time", "last_seen_time"} <= set(event["finding_info"])
        assert event["metadata"]["product"] == {
            "name": "autosec",
            "vendor_name": "autosec",
            "version": PRODUCT_VERSION,
        }
        assert event["metadata"]["version"] == "1.1.0"
        assert isinstance(event["time"], int) and event["resources"][0]["uid"]
    by_uid = {e["finding_info"]["uid"]: e for e in events}
    kev = by_uid["fp-kev-web"]
    assert (kev["severity_id"], kev["severity"], kev["status_id"], kev["activity_id"]) == (
        4,
        "High",
        1,
        1,
    )
    [vulnerability] = kev["vulnerabilities"]
    assert vulnerability["cve"]["uid"] == KEV_CVE
    assert vulnerability["cve"]["cvss"] == [
        {
            "base_score": 7.5,
            "version": "3.1",
            "vector_string": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        }
    ]
    assert vulnerability["is_exploit_available"] is True
    assert vulnerability["cwe"] == {"uid": "CWE-22"}
    assert kev["finding_info"]["first_seen_time"] == 1770282000000  # 2026-02-05 09:00 UTC
    assert kev["unmapped"]["autosec"]["due_date"] == "2021-11-17"
    assert by_uid["fp-kev-db"]["severity_id"] == 5
    fixed = by_uid["fp-fixed-late"]
    assert (fixed["activity_id"], fixed["status_id"], fixed["status"]) == (3, 4, "Resolved")
    assert by_uid["fp-accepted"]["status_id"] == 3
    assert by_uid["fp-banner"]["severity_id"] == 1
    assert by_uid["fp-hostile"]["resources"][0]["name"] == HOSTILE_ASSET
    assert "cve" not in by_uid["fp-banner"]["vulnerabilities"][0]
    assert render_ocsf(make_pack(findings=[]), PRODUCT_VERSION) == b"[]\n"


# -------------------------------------------------------------------------------- SARIF


def test_sarif_runs_per_engine_with_rules_results_and_suppressions(pack, pieces) -> None:
    log = json.loads(pieces["findings_sarif"])
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    results = []
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        rules = driver["rules"]
        assert [r["id"] for r in rules] == sorted({r["id"] for r in rules})
        for result in run["results"]:
            assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
            assert result["level"] in ("error", "warning", "note")
            assert result["message"]["text"]
            assert result["partialFingerprints"]["autosec/v1"]
            assert result["locations"][0]["logicalLocations"][0]["kind"] == "resource"
            results.append(result)
        assert run["automationDetails"]["id"] == f"autosec/fedramp/2026-03/{driver['name']}"
    fingerprints = {r["partialFingerprints"]["autosec/v1"]: r for r in results}
    assert len(results) == len(pack.findings) - 2  # fixed findings are not results
    assert "fp-fixed-late" not in fingerprints
    accepted = fingerprints["fp-accepted"]
    assert accepted["suppressions"][0]["status"] == "accepted"
    assert accepted["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "app/settings.py"},
        "region": {"startLine": 12},
    }
    assert fingerprints["fp-kev-db"]["level"] == "error"
    assert fingerprints["fp-banner"]["level"] == "note"
    kev_rule = next(
        rule
        for run in log["runs"]
        for rule in run["tool"]["driver"]["rules"]
        if rule["id"] == "nmap.kev-web"
    )
    assert kev_rule["properties"]["security-severity"] == "7.5"
    assert render_sarif(make_pack(findings=[]), PRODUCT_VERSION).startswith(b'{"$schema"')
    # Written piece by piece, the file is exactly the whole log dumped at once.
    whole = json.dumps(
        sarif_log(pack, PRODUCT_VERSION), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    assert pieces["findings_sarif"] == (whole + "\n").encode()


# ------------------------------------------------------------------------- HTML and PDF


def test_the_html_escapes_and_shows_every_section(pack, pieces) -> None:
    html = pieces["pack_html"].decode()
    assert "<script>alert(1)</script>" not in html and HOSTILE_ASSET not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert POLICY_HASH in html and pack.framework_sha256 in html
    for section in (
        "controls",
        "coverage",
        "age",
        "sla",
        "poam",
        "exceptions",
        "approvals",
        "actions",
        "inventory",
        "intel",
        "files",
        "evidence",
    ):
        assert f'<section id="{section}">' in html
    assert 'data-control="RA-5"' in html and 'data-tier="KEV due date"' in html
    assert "compensating WAF rule" in html and "patch window agreed" in html
    data_pieces = [p for p in render_pack(pack, PRODUCT_VERSION) if p.name in PIECES][:4]
    for piece in data_pieces:  # the files beside it, by sha256
        assert f'data-piece="{piece.name}"' in html and piece.sha256 in html
    # the coverage map: one row per detection, one column per asset kind
    assert "<th>Detection</th><th>host</th><th>web_app</th>" in html
    assert '<td>secrets in code</td><td class="coverage-missing" title="not enabled">' in html
    no_table = render_pack_html(make_pack(exceptions=None)).decode()
    assert "This store has no exceptions table yet" in no_table


def test_the_pdf_is_a_pdf_with_pages_and_no_date_of_writing(pieces) -> None:
    pdf = pieces["pack_pdf"]
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    assert 3 <= pdf_pages(pdf) <= 10
    assert re.search(rb"/Count (\d+)", pdf).group(1) == str(pdf_pages(pdf)).encode()
    assert b"/CreationDate (D:20000101000000" in pdf  # ReportLab's invariant date


@pytest.mark.parametrize(
    ("top", "step"), [(0, 1), (4, 1), (7, 2), (12, 5), (1670, 500), (2500, 500), (99_999, 20_000)]
)
def test_chart_axes_step_by_one_two_or_five_times_a_power_of_ten(top: int, step: int) -> None:
    assert nice_step(top) == step


def test_the_pdf_stays_short_whatever_the_number_of_findings() -> None:
    many = [
        finding_row(f"w{i:05d}", rule_id=f"rule-{i:05d}", asset_id=f"a{i % 97}")
        for i in range(3000)
    ]
    big = make_pack(findings=many)
    assert len(big.open_items) == 3000 > TABLE_LIMIT
    assert pdf_pages(render_pack_pdf(big)) <= 12


def test_hostile_text_does_not_break_the_pdf_layout() -> None:
    huge = finding_row("huge", title="A" * 100_000, asset_name="<b>" * 5000)
    assert render_pack_pdf(make_pack(findings=[huge])).startswith(b"%PDF-")


# --------------------------------------------------------------------------- manifest


def test_the_manifest_lists_every_other_file_and_the_evidence(pack, pieces) -> None:
    manifest = json.loads(pieces["manifest"])
    rendered = render_pack(pack, PRODUCT_VERSION)
    assert [p["name"] for p in manifest["pieces"]] == [p.name for p in rendered[:-1]]
    assert {p["name"]: p["sha256"] for p in manifest["pieces"]} == {
        p.name: p.sha256 for p in rendered[:-1]
    }
    assert manifest["period"] == {"start": "2026-03-01", "end": "2026-03-31", "label": "2026-03"}
    assert manifest["policy"] == {"version": "2026.03.1", "sha256": POLICY_HASH}
    assert {e["sha256"] for e in manifest["evidence"]} == {e.sha256 for e in pack.evidence}
    assert manifest["evidence_queries"]["findings"] == len(pack.findings)
    assert [p.filename for p in rendered] == [
        "fedramp-2026-03" + suffix for suffix, _ in PIECES.values()
    ]


# ------------------------------------------------------------------------ reproducible


def test_building_twice_gives_identical_bytes_for_every_format(pack) -> None:
    first = render_pack(pack, PRODUCT_VERSION)
    second = render_pack(make_pack(), PRODUCT_VERSION)
    assert [p.name for p in first] == list(PIECES)
    for a, b in zip(first, second, strict=True):
        assert a.content == b.content, a.name


def test_a_fresh_interpreter_with_another_hash_seed_gives_the_same_bytes(pack) -> None:
    here = {p.name: p.sha256 for p in render_pack(pack, PRODUCT_VERSION)}
    script = (
        "import json\n"
        "from autosec.reporting.pieces import render_pack\n"
        "from unit.reporting.pack_rows import PRODUCT_VERSION, make_pack\n"
        "print(json.dumps({p.name: p.sha256 for p in render_pack(make_pack(), PRODUCT_VERSION)}))\n"
    )
    for seed in ("1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT / "tests")}
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == here
