"""The sbom engine end to end: the real runner executes the reader on corpus SBOMs, and the
parser matches against advisories loaded into the real store; then the `autosec` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autosec.cli import main
from autosec.domain.models import Severity
from autosec.domain.targets import validate_target
from autosec.engines.runner import Runner
from autosec.intel.osv import iter_osv
from autosec.stages import intel as stage
from autosec.store import intel as store

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, tzinfo=UTC)
JUICE_SHOP = "sbom/CycloneDX__bom-examples/SBOM/juice-shop/v11.1.2/bom.json"
DROPWIZARD = "sbom/CycloneDX__bom-examples/SBOM/dropwizard-1.3.15/bom.json"


@pytest.fixture
def loaded(conn, corpus: Path):
    store.load_advisories(conn, iter_osv(corpus / "osv"), "osv:corpus", NOW)
    conn.commit()
    return conn


def scan(conn, *paths: Path):
    engine = stage.bind_sbom_engine(conn, NOW)
    targets = [validate_target(str(p)) for p in paths]
    result = Runner()(engine.command(targets, {}), timeout=engine.default_timeout_seconds)
    return engine, result


def test_a_run_through_the_runner_finds_exactly_the_known_vulnerabilities(
    loaded, corpus: Path
) -> None:
    juice_shop = corpus / JUICE_SHOP
    engine, result = scan(loaded, juice_shop)
    assert result.ok, result.stderr.decode()
    observations = engine.parse(result.stdout, {str(juice_shop): "juice-shop"})
    found = {
        o.rule_id: (
            o.location.purl,
            o.evidence["versions"],
            o.evidence["fixed_versions"],
            o.severity,
        )
        for o in observations
    }
    assert found == {
        "sbom.vulnerable-component:CVE-2022-25883": (
            "pkg:npm/semver", ["5.7.1", "6.3.0", "7.3.2"], ["5.7.2", "6.3.1", "7.5.2"],
            Severity.MEDIUM,
        ),
        "sbom.vulnerable-component:CVE-2024-37890": (
            "pkg:npm/ws", ["6.1.4", "7.3.1"], ["6.2.3", "7.5.10"], Severity.HIGH,
        ),
        "sbom.vulnerable-component:CVE-2024-4068": (
            "pkg:npm/braces", ["2.3.2"], ["3.0.3"], Severity.HIGH,
        ),
    }  # fmt: skip
    assert {o.asset_id for o in observations} == {"juice-shop"}
    assert {o.location.file for o in observations} == {str(juice_shop)}


def test_commons_text_1_2_is_not_text4shell_but_snakeyaml_1_23_is_vulnerable(
    loaded, corpus: Path
) -> None:
    dropwizard = corpus / DROPWIZARD
    engine, result = scan(loaded, dropwizard)
    observations = engine.parse(result.stdout, {str(dropwizard): "dropwizard"})
    assert [(o.rule_id, o.evidence["fixed_versions"]) for o in observations] == [
        ("sbom.vulnerable-component:CVE-2022-1471", ["2.0"])
    ]


def test_two_sboms_in_one_run_go_to_their_own_assets(loaded, corpus: Path) -> None:
    engine, result = scan(loaded, corpus / DROPWIZARD, corpus / JUICE_SHOP)
    owners = {str(corpus / DROPWIZARD): "dropwizard", str(corpus / JUICE_SHOP): "juice-shop"}
    observations = engine.parse(result.stdout, owners)
    assert sorted({o.asset_id for o in observations}) == ["dropwizard", "juice-shop"]
    assert len(observations) == 4


def test_an_unreadable_sbom_fails_the_run(loaded, tmp_path: Path) -> None:
    broken = tmp_path / "broken.cdx.json"
    broken.write_text('{"bomFormat": "CycloneDX", "components": [')
    _, result = scan(loaded, broken)
    assert result.exit_code == 2
    assert result.stderr.decode().startswith(f"sbom: {broken}: line 1, column 43: invalid JSON")


# --- the command line -----------------------------------------------------------------------


def test_intel_load_then_sbom_scan_json(conn, store_url: str, corpus: Path, capsys) -> None:
    def autosec(*argv: str) -> int:
        return main(["--database-url", store_url, *argv])

    assert autosec("sbom", "scan", str(corpus / JUICE_SHOP)) == 2
    assert "no advisories are loaded" in capsys.readouterr().err
    kev = corpus / "kev" / "cisagov__kev-data" / "known_exploited_vulnerabilities.json"
    assert autosec("intel", "load", "--osv", str(corpus / "osv"), "--kev", str(kev)) == 0
    out = capsys.readouterr().out
    assert "osv:local: loaded (total 202, new 202" in out
    assert "kev: loaded (total 1404, new 1404" in out

    assert autosec("sbom", "scan", "--json", str(corpus / DROPWIZARD)) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["components"] == 167
    (snakeyaml,) = report["vulnerable"]
    assert snakeyaml["purl"] == "pkg:maven/org.yaml/snakeyaml@1.23?type=jar"
    assert snakeyaml["ids"] == ["CVE-2022-1471", "GHSA-mjmj-j48q-9wg2"]
    assert snakeyaml["fixed_versions"] == ["2.0"]

    assert autosec("sbom", "scan", str(corpus / JUICE_SHOP)) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "VULNERABLE pkg:npm/braces@2.3.2 [high] CVE-2024-4068, GHSA-grv7-fg5c-xmjg; " \
        "fixed in: 3.0.3" in lines  # fmt: skip
    assert sum(line.startswith("VULNERABLE ") for line in lines) == 6

    clean = corpus / "sbom" / "CycloneDX__bom-examples" / "SBOM" / "laravel-7.12.0" / "bom.1.4.json"
    assert autosec("sbom", "scan", str(clean)) == 0


def test_the_installed_command_with_the_database_url_from_the_environment(
    loaded, store_url: str, corpus: Path
) -> None:
    autosec = Path(sys.executable).with_name("autosec")
    env = dict(os.environ, AUTOSEC_DATABASE_URL=store_url)
    result = subprocess.run(
        [str(autosec), "sbom", "scan", "--json", str(corpus / "sbom" / "CycloneDX__bom-examples"
         / "SBOM" / "cern-lhc-vdm-editor-e564943" / "bom.xml")],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert [(v["purl"], v["fixed_versions"]) for v in report["vulnerable"]] == [
        ("pkg:npm/ws@6.2.1", ["6.2.3"])
    ]
    assert report["format"] == "cyclonedx-xml"
    assert "osv feed is" in report["feed_warning"]


def test_the_scan_stage_runs_the_sbom_engine_bound_to_the_stored_advisories(
    loaded, corpus: Path, tmp_path: Path
) -> None:
    from autosec.config.estate import ScanConfig
    from autosec.domain.models import Asset, AssetKind, Criticality, Environment
    from autosec.stages.blobs import LocalBlobStore
    from autosec.stages.scan import Batch, run_batch
    from autosec.store import inventory

    conn = loaded
    sync = inventory.start_sync(conn, "cmdb", "file")
    juice_shop = Asset(
        "juice-shop", "juice-shop", AssetKind.REPOSITORY, "cmdb", "team-web",
        Environment.STAGING, Criticality.MEDIUM, (str(corpus / JUICE_SHOP),),
    )  # fmt: skip
    inventory.apply_source_snapshot(conn, sync, "cmdb", [juice_shop], NOW)
    conn.commit()

    outcome = run_batch(
        conn, Batch("sbom", ("juice-shop",)), ScanConfig(engines=["sbom"]),
        LocalBlobStore(tmp_path), Runner(), lambda: NOW,
    )  # fmt: skip

    assert outcome.status == "succeeded", outcome.error
    assert outcome.observations == 3
    rules = conn.execute(
        "SELECT payload->>'rule_id' FROM observations WHERE scan_run_id = %s ORDER BY 1",
        (outcome.scan_run_id,),
    ).fetchall()
    assert [r[0] for r in rules] == [
        "sbom.vulnerable-component:CVE-2022-25883",
        "sbom.vulnerable-component:CVE-2024-37890",
        "sbom.vulnerable-component:CVE-2024-4068",
    ]
