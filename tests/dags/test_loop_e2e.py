"""The whole loop on real Airflow (dag.test on a migrated metadata DB), the real store, real
nmap against the demo services on loopback, the ticketing stand-in over HTTP, and the approval
gate cleared in between with the ``autosec approvals approve`` command. Then the loop runs a
second time and must change nothing but last-seen times.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
from pathlib import Path

import pytest
import yaml

from tests_support import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DEMO = REPO_ROOT / "include" / "autosec" / "demo"
APPROVER = "secops-lead"


@pytest.fixture(scope="module")
def loop(tmp_path_factory, postgres_available):
    """Run the loop twice; yield what the store and the ticketing API held after each run."""
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed")
    from autosec.demo.chat import ChatServer
    from autosec.demo.run import DemoEnvironment, prepare, run_loop
    from autosec.demo.services import DemoEstate
    from autosec.demo.ticketing import TicketingServer
    from autosec.store import db
    from conftest import ADMIN_URL

    workdir = tmp_path_factory.mktemp("loop")
    suffix = secrets.token_hex(3)
    token = secrets.token_urlsafe(12)
    with (
        ChatServer() as chat,
        TicketingServer(token=token) as ticketing,
        DemoEstate(ports={"web": 0, "db": 0, "shadow": 0}) as estate_services,
    ):
        ports = sorted({port for _, port in estate_services.endpoints.values()})
        estate = yaml.safe_load((DEMO / "estate.yaml").read_text())
        estate["inventory"][0]["path"] = str(DEMO / "inventory.csv")
        for export in estate["discovery"].get("billing", []):
            export["path"] = str(DEMO / export["path"])
        estate["policy"] = str((DEMO / estate["policy"]).resolve())
        estate["intel"] = {
            "osv": [{"name": "local", "path": str(DEMO / "intel" / "osv")}],
            "kev": {"path": str(DEMO / "intel" / "kev.csv")},
            "epss": {"path": str(DEMO / "intel" / "epss.csv")},
        }
        estate["discovery"]["tcp_sweep"]["ports"] = ports
        estate["scan"]["ports"] = ports
        estate_file = workdir / "estate.yaml"
        estate_file.write_text(yaml.safe_dump(estate))
        env = DemoEnvironment(
            workdir,
            ADMIN_URL,
            f"autosec_e2e_{suffix}",
            f"autosec_e2e_af_{suffix}",
            ticketing.url,
            token,
            estate=estate_file,
            chat_url=chat.url,
        )
        try:
            prepare(env)
            first_states = run_loop(env, approver=APPROVER, echo=lambda _: None)
            first = _snapshot(env.store_url, ticketing)
            first["chat"] = chat.messages()
            second_states = run_loop(env, approver=APPROVER, echo=lambda _: None)
            second = _snapshot(env.store_url, ticketing)
            second["chat"] = chat.messages()
            yield {
                "states": (first_states, second_states),
                "first": first,
                "second": second,
                "endpoints": estate_services.endpoints,
                "log": (workdir / "loop.log"),
            }
        finally:
            db.drop_database(ADMIN_URL, env.store_db)
            db.drop_database(ADMIN_URL, env.airflow_db)


def _snapshot(store_url: str, ticketing) -> dict:
    from psycopg.rows import dict_row

    from autosec.store import db

    with db.connect(store_url) as conn:
        cur = conn.cursor(row_factory=dict_row)

        def rows(query: str) -> list[dict]:
            return cur.execute(query).fetchall()

        return {
            "assets": rows("SELECT * FROM assets ORDER BY id"),
            "blind_spots": rows("SELECT * FROM blind_spots ORDER BY id"),
            "findings": rows("SELECT * FROM findings ORDER BY id"),
            "history": rows("SELECT * FROM finding_history ORDER BY id"),
            "decisions": rows("SELECT * FROM policy_decisions ORDER BY id"),
            "actions": rows("SELECT * FROM actions ORDER BY id"),
            "approvals": rows("SELECT * FROM approvals ORDER BY id"),
            "approval_decisions": rows("SELECT * FROM approval_decisions ORDER BY id"),
            "reports": rows("SELECT * FROM reports ORDER BY id"),
            "evidence": rows("SELECT * FROM evidence ORDER BY id"),
            "tickets": ticketing.tickets(),
        }


def test_every_stage_succeeds_both_times(loop) -> None:
    from autosec.demo.run import LOOP_ORDER

    assert {"intel_feeds", "imports", "scan", "triage", "remediate", "report"} <= set(LOOP_ORDER)
    for states in loop["states"]:
        assert {d: s["state"] for d, s in states.items()} == dict.fromkeys(LOOP_ORDER, "success"), (
            loop["log"].read_text()[-5000:]
        )


def test_the_shadow_service_and_the_unknown_account_are_blind_spots(loop) -> None:
    shadow_host, shadow_port = loop["endpoints"]["shadow"]
    spots = {(b["address"], b["port"]) for b in loop["first"]["blind_spots"]}
    assert (shadow_host, shadow_port) in spots
    assert ("aws:account:210987654321", 0) in spots
    owners = {(b["address"], b["owner"]) for b in loop["first"]["blind_spots"]}
    assert {(shadow_host, "team-platform"), ("aws:account:210987654321", "team-cloud")} <= owners
    spots.discard(("aws:account:210987654321", 0))
    inventoried = {a for asset in loop["first"]["assets"] for a in asset["addresses"]}
    assert not {address for address, _ in spots} & inventoried


def test_nmap_found_the_banner_and_the_database(loop) -> None:
    findings = {(f["asset_id"], f["rule_id"]): f for f in loop["first"]["findings"]}
    banner = findings[("web-frontend", "nmap.service-version-disclosed")]
    assert "Apache httpd 2.4.49" in banner["title"]
    assert banner["status"] == "open" and banner["due_date"] is not None
    database = findings[("orders-db", "nmap.database-exposed")]
    assert database["severity"] == "high"
    assert all(f["evidence_sha256"] for f in loop["first"]["findings"])
    for evidence in loop["first"]["evidence"]:
        assert (
            hashlib.sha256(Path(evidence["path"].removeprefix("file://")).read_bytes()).hexdigest()
            == evidence["sha256"]
        )


def test_the_gate_was_approved_by_a_named_approver_and_tickets_were_filed(loop) -> None:
    first = loop["first"]
    assert first["approvals"], "the production database finding must need an approval"
    for approval in first["approvals"]:
        assert approval["status"] == "approved"
    decisions = first["approval_decisions"]
    assert {d["approver"] for d in decisions} == {APPROVER}
    assert all(d["reason"] and d["decision"] == "approve" for d in decisions)
    gated = [a for a in first["actions"] if a["approval_id"] is not None]
    assert gated and all(a["status"] == "applied" and a["external_ref"] for a in gated)
    tickets = {t["external_id"]: t for t in first["tickets"]}
    for action in first["actions"]:
        if action["status"] == "applied":
            assert action["idempotency_key"] in tickets
    assert any("MySQL" in t["title"] for t in first["tickets"])


def test_the_reports_are_stored_with_their_sha256(loop) -> None:
    reports = loop["first"]["reports"]
    assert {r["kind"] for r in reports} == {"posture", "poam"}
    for report in reports:
        content = Path(report["path"].removeprefix("file://")).read_bytes()
        assert hashlib.sha256(content).hexdigest() == report["sha256"]
    posture = next(r for r in reports if r["kind"] == "posture")
    html = Path(posture["path"].removeprefix("file://")).read_text()
    assert "Apache httpd 2.4.49" in html and "127.0.0.13" in html


def test_the_second_run_changes_nothing_but_last_seen(loop) -> None:
    first, second = loop["first"], loop["second"]
    for table in (
        "chat",
        "assets",
        "blind_spots",
        "history",
        "decisions",
        "actions",
        "approvals",
        "approval_decisions",
        "tickets",
    ):
        assert len(second[table]) == len(first[table]), table
    volatile = {"last_seen", "last_scan_run_id", "evidence_sha256"}
    for before, after in zip(first["findings"], second["findings"], strict=True):
        assert {k: v for k, v in before.items() if k not in volatile} == {
            k: v for k, v in after.items() if k not in volatile
        }
        assert after["last_seen"] > before["last_seen"]
    assert len(second["findings"]) == len(first["findings"])


def test_each_approval_request_was_announced_with_a_link(loop) -> None:
    approvals = loop["first"]["approvals"]
    texts = [m["text"] for m in loop["first"]["chat"] if m["text"].startswith("Approval #")]
    assert len(texts) == len(approvals)
    for approval in approvals:
        assert any(
            f"Approval #{approval['id']} needed" in t
            and f"/plugin/autosec-approvals#approval-{approval['id']}" in t
            for t in texts
        )


def test_lifecycle_events_arrive_once_as_a_digest_per_team(loop) -> None:
    digests = [m["text"] for m in loop["second"]["chat"] if m["text"].startswith("autosec: ")]
    shadow_host, shadow_port = loop["endpoints"]["shadow"]
    # Each blind spot is told once over both loops, in the digest of the team the assignment
    # rules gave it.
    for subject, team in (
        (f"{shadow_host}:{shadow_port}", "team-platform"),
        ("aws:account:210987654321:0", "team-cloud"),
    ):
        [told] = [d for d in digests if subject in d]
        assert told.splitlines()[0].endswith(f" for team {team}"), told
        assert "blind_spot.found: 1" in told


def test_the_teams_trivy_report_came_in_through_the_drop_folder(loop) -> None:
    imported = [f for f in loop["first"]["findings"] if f["engine"] == "import:trivy"]
    assert {f["rule_id"] for f in imported} == {"CVE-2021-44228", "CVE-2022-42889", "CVE-2022-1471"}
    assert {f["asset_id"] for f in imported} == {"payments-service"}
    assert all(f["status"] == "open" and f["evidence_sha256"] for f in imported)
    drop = loop["log"].parent / "drop"
    assert (drop / "done" / "payments-service.trivy.json").exists()
    assert not any((drop / "incoming").iterdir()) and not any((drop / "claimed").iterdir())
    # pushed again before the second loop: imported again, nothing changed (see above), and
    # filed under done/ beside the first one
    assert len(list((drop / "done").glob("payments-service*.json"))) == 2
