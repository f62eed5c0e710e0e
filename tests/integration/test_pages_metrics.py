"""GET /autosec/metrics: the Prometheus text format, parsed strictly here (prometheus_client is
not a dependency), with every value equal to what the store holds."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from autosec.airflow.pages_app import create_app
from autosec.airflow.prometheus import escape_label
from autosec.config.estate import ScanConfig
from autosec.stages.rollups import refresh
from autosec.store import db
from browser.pages_support import HOSTILE_TEAM, add_finding, in_process_tokens, seed_estate

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
TODAY = NOW.date()
SCAN = ScanConfig(engines=["nmap"])
ODD_TEAM = 'dev\\ops\n"night" shift'

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def parse_exposition(text: str) -> dict[str, dict[frozenset, float]]:
    """Families -> {labels: value}; raises AssertionError on anything the format forbids."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, dict[frozenset, float]] = {}
    helped: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name) and name not in helped, where
            helped.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helped and name not in families and kind in _TYPES, where
            families[name], current = {}, name
            continue
        assert not line.startswith("#") and line, where
        match = _SAMPLE.match(line)
        assert match and match.group(1) == current, where
        labels: dict[str, str] = {}
        rest = match.group(2) or ""
        while rest:
            label = _LABEL.match(rest)
            assert label and label.group(1) not in labels, where
            labels[label.group(1)] = re.sub(
                r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), label.group(2)
            )
            rest = rest[label.end() :]
        value = float(match.group(3))
        key = frozenset(labels.items())
        assert key not in families[current], f"{where}: repeated sample"
        families[current][key] = value
    return families


def one(families, name: str, **labels) -> float:
    return families[name][frozenset(labels.items())]


def test_the_parser_refuses_what_the_format_forbids() -> None:
    good = '# HELP a_b x\n# TYPE a_b gauge\na_b{t="q\\"\\\\\\n"} 1\n'
    assert one(parse_exposition(good), "a_b", t='q"\\\n') == 1
    for bad in (
        "# TYPE a gauge\na 1\n",  # no HELP
        "# HELP a x\n# TYPE a gauge\nb 1\n",  # sample outside its family
        '# HELP a x\n# TYPE a gauge\na{t="x"y"} 1\n',  # unescaped quote
        '# HELP a x\n# TYPE a gauge\na{t="x\\ty"} 1\n',  # unknown escape
        "# HELP a x\n# TYPE a gauge\na 1",  # no final newline
        "# HELP a x\n# TYPE a gauge\na 1\na 2\n",  # repeated
    ):
        with pytest.raises(AssertionError):
            parse_exposition(bad)


@pytest.fixture
def client(store_url, conn, tmp_path, monkeypatch) -> TestClient:
    base = (tmp_path / "data").as_uri()
    monkeypatch.setenv("AUTOSEC_DATA_DIR", base)
    seed_estate(conn, NOW, base)
    add_finding(
        conn,
        "ci-1",
        ODD_TEAM,
        "high",
        [(NOW - timedelta(days=30), "open")],
        due_date=TODAY - timedelta(days=2),
    )
    conn.commit()
    refresh(conn, SCAN, NOW)
    app = create_app(
        connect=lambda: db.connect(store_url),
        clock=lambda: NOW,
        scan_config=lambda: SCAN,
        csrf_secret=b"m" * 32,
    )
    return TestClient(app)


def test_metrics_need_a_login_and_parse(client) -> None:
    assert client.get("/metrics").status_code == 401
    tokens = in_process_tokens({"prometheus": "viewer"})
    response = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['prometheus']}"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = parse_exposition(response.text)
    assert set(families) >= {
        "autosec_findings_open",
        "autosec_sla_breaches",
        "autosec_mean_time_to_fix_seconds",
        "autosec_scan_coverage_ratio",
        "autosec_coverage_map_cells",
        "autosec_blind_spots_open",
        "autosec_approvals_waiting",
    }


def test_metric_values_equal_the_store(client, conn) -> None:
    tokens = in_process_tokens({"prometheus": "viewer"})
    text = client.get("/metrics", headers={"Authorization": f"Bearer {tokens['prometheus']}"})
    families = parse_exposition(text.text)
    for severity, count in conn.execute(
        "SELECT s, (SELECT count(*) FROM findings WHERE severity = s "
        "AND status IN ('open', 'reopened')) FROM unnest(%s::text[]) AS s",
        (["critical", "high", "medium", "low", "info"],),
    ):
        assert one(families, "autosec_findings_open", severity=severity) == count, severity
    for team, severity, count in conn.execute(
        "SELECT coalesce(owner, '(unowned)'), severity, count(*) FROM findings "
        "WHERE status IN ('open', 'reopened') GROUP BY 1, 2"
    ):
        assert one(families, "autosec_team_findings_open", team=team, severity=severity) == count
    breached_by_team = dict(
        conn.execute(
            "SELECT coalesce(owner, '(unowned)'), count(*) FILTER (WHERE due_date < %s) "
            "FROM findings WHERE status IN ('open', 'reopened') GROUP BY 1",
            (TODAY,),
        ).fetchall()
    )
    got = {dict(k)["team"]: v for k, v in families["autosec_team_sla_breaches"].items()}
    assert {k: v for k, v in got.items() if k in breached_by_team} == breached_by_team
    assert all(v == 0 for k, v in got.items() if k not in breached_by_team)
    assert got[ODD_TEAM] == 1 and got[HOSTILE_TEAM] == 0
    assert f'team="{escape_label(ODD_TEAM)}"' in text.text
    assert 'team="dev\\\\ops\\n\\"night\\" shift"' in text.text
    fixed, seconds = conn.execute(
        "SELECT count(*), avg(extract(epoch FROM h.at - f.first_seen)) FROM finding_history h "
        "JOIN findings f ON f.id = h.finding_id WHERE h.to_status = 'fixed' AND h.at >= %s",
        (datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC) - timedelta(days=29),),
    ).fetchone()
    assert one(families, "autosec_findings_fixed_30d") == fixed
    assert one(families, "autosec_mean_time_to_fix_seconds") == pytest.approx(float(seconds))
    assert one(families, "autosec_assets_total") == 4
    assert one(families, "autosec_assets_scanned_within_cadence") == 2
    assert one(families, "autosec_scan_coverage_ratio") == 0.5
    assert (
        one(families, "autosec_blind_spots_open")
        == conn.execute("SELECT count(*) FROM blind_spots WHERE status = 'open'").fetchone()[0]
    )
    assert (
        one(families, "autosec_approvals_waiting")
        == conn.execute("SELECT count(*) FROM approvals WHERE status = 'pending'").fetchone()[0]
    )
    assert one(families, "autosec_inventory_completeness_ratio") == pytest.approx(0.8)
    assert one(families, "autosec_findings_known_exploited_open") == 1
    assert one(families, "autosec_rollup_available") == 1
    assert math.isclose(one(families, "autosec_rollup_timestamp_seconds"), NOW.timestamp())
    cells = families["autosec_coverage_map_cells"]
    assert {dict(k)["coverage"] for k in cells} == {"CHECK", "LIMITED", "MISSING"}
    assert one(families, "autosec_coverage_map_cells", coverage="CHECK") > 0


def test_an_empty_store_still_answers_in_the_format(store_url, conn) -> None:
    tokens = in_process_tokens({"prometheus": "viewer"})
    app = create_app(
        connect=lambda: db.connect(store_url),
        clock=lambda: NOW,
        scan_config=lambda: SCAN,
        csrf_secret=b"m" * 32,
    )
    response = TestClient(app).get(
        "/metrics", headers={"Authorization": f"Bearer {tokens['prometheus']}"}
    )
    families = parse_exposition(response.text)
    assert one(families, "autosec_rollup_available") == 0
    assert "autosec_findings_open" not in families
