from __future__ import annotations

from datetime import UTC, datetime

from autosec.remediation.messages import approval_request_text, event_digest


def test_approval_request_text_names_the_decision_and_links_to_it() -> None:
    text = approval_request_text(
        {
            "id": 7,
            "summary": "ticket: exposed db\non orders-db",
            "rule_id": "prod-high",
            "approvers": ["secops-lead", "ciso"],
            "quorum": 2,
            "expires_at": datetime(2026, 11, 26, 13, 0, tzinfo=UTC),
        },
        "https://airflow.example/plugin/autosec-approvals",
    )
    assert "Approval #7 needed: ticket: exposed db on orders-db" in text
    assert "approvers secops-lead, ciso; quorum 2; expires 2026-11-26 13:00 UTC" in text
    assert text.endswith("Decide: https://airflow.example/plugin/autosec-approvals#approval-7")


def test_a_storm_of_events_becomes_one_bounded_digest() -> None:
    events = [
        {"name": "scan.failed", "subject": f"scan_run:{i}", "payload": {"error": "exit 1"}}
        for i in range(500)
    ] + [{"name": "break_glass.opened", "subject": "break_glass:3", "payload": {"reason": "P1"}}]
    digest = event_digest(events, max_lines_per_event=5)
    lines = digest.splitlines()
    assert lines[0] == "autosec: 501 event(s)"
    assert "break_glass.opened: 1" in lines and "scan.failed: 500" in lines
    assert "  - break_glass:3: P1" in lines
    assert sum(1 for line in lines if line.startswith("  - scan_run:")) == 5
    assert "  … and 495 more" in lines
    assert len(lines) < 15
