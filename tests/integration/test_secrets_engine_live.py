"""The secrets engine for real: detect-secrets through the runner over folders on disk, and the
scan stage running it per repository against the real store.

The credentials are made up and assembled at run time, so this file holds none a secret
scanner would flag; the test then checks that their clear text reaches no observation, no
stored row and no evidence file.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autosec.config.estate import ScanConfig
from autosec.domain.models import Asset, AssetKind, Criticality, Environment
from autosec.domain.targets import InvalidTarget, Target, TargetKind, validate_target
from autosec.engines.runner import Runner, RunResult
from autosec.engines.secrets.engine import SecretsEngine
from autosec.stages.blobs import LocalBlobStore
from autosec.stages.scan import Batch, run_batch
from autosec.store import inventory

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
AWS_KEY_ID = "AKIA" + "Q5RZ7TW3YU8IOP2M"
ENTROPY_TOKEN = "7c4e1f9a2b8d" + "3e6f0a5c9b1d" + "4e7f2a8c6b3d"
KEY_BODY = base64.b64encode(b"made-up key material for a scanner test, nothing more").decode()
PRIVATE_KEY = (
    f"-----BEGIN {'RSA PRIVATE'} KEY-----\n{KEY_BODY}\n-----END {'RSA PRIVATE'} KEY-----\n"
)
CLEAR_TEXTS = (AWS_KEY_ID, ENTROPY_TOKEN, KEY_BODY)


def make_repository(root: Path) -> Path:
    (root / "config").mkdir(parents=True)
    (root / "deploy").mkdir()
    (root / "config" / "settings.py").write_text(
        f'"""Settings."""\n\nDEBUG = False\nAWS_ACCESS_KEY_ID = "{AWS_KEY_ID}"\n'
    )
    (root / "deploy" / "id_rsa").write_text(PRIVATE_KEY)
    (root / "config" / "app.yaml").write_text(f"name: orders\nretries: 3\ntoken: {ENTROPY_TOKEN}\n")
    (root / "README.md").write_text("# orders\n\nNothing to see here.\n")
    return root


def assert_no_clear_text(text: str) -> None:
    for secret in CLEAR_TEXTS:
        assert secret not in text


def test_detect_secrets_finds_each_secret_by_file_and_line(tmp_path: Path) -> None:
    root = make_repository(tmp_path / "orders")
    engine = SecretsEngine()
    argv = engine.command([validate_target(str(root))], {})
    result = Runner(cwd=tmp_path)(argv, timeout=120)
    assert result.ok, result.stderr.decode(errors="replace")
    assert_no_clear_text(result.stdout.decode())  # detect-secrets itself writes only hashes

    observations = engine.parse(result.stdout, {str(root): "repo-orders"})
    found = {(o.rule_id, o.location.file): o for o in observations}
    assert {(rule, file, tuple(o.evidence["lines"])) for (rule, file), o in found.items()} == {
        ("secrets.aws-access-key", "config/settings.py", (4,)),
        ("secrets.private-key", "deploy/id_rsa", (1,)),
        ("secrets.hex-high-entropy-string", "config/app.yaml", (3,)),
    }
    aws = found[("secrets.aws-access-key", "config/settings.py")]
    assert aws.title == "AWS Access Key in config/settings.py:4"
    assert aws.severity == "high" and aws.asset_id == "repo-orders"
    assert len(aws.evidence["secret_sha1"][0]) == 40
    assert_no_clear_text(repr(observations))
    assert engine.parse_version(Runner()(engine.version_command(), timeout=60).stdout.decode())


def test_relative_root_and_a_missing_root(tmp_path: Path) -> None:
    make_repository(tmp_path / "orders")
    engine = SecretsEngine()
    relative = engine.command([validate_target("./orders")], {})
    result = Runner(cwd=tmp_path)(relative, timeout=120)
    assert result.ok
    assert {o.location.file for o in engine.parse(result.stdout, {"./orders": "r"})} == {
        "config/settings.py",
        "deploy/id_rsa",
        "config/app.yaml",
    }
    # a folder that is gone must fail the run, not report "nothing found"
    missing = Runner()(engine.command([validate_target(str(tmp_path / "gone"))], {}), timeout=60)
    assert missing.exit_code == 2 and not missing.stdout
    assert b"is not a directory" in missing.stderr


@pytest.mark.parametrize("hostile", ["--foo", "/srv/$(id)", "./a\nb", "/srv/a\x00b", "-C/etc"])
def test_a_hostile_path_is_refused_before_the_runner_sees_it(hostile: str) -> None:
    calls: list[list[str]] = []

    def runner(argv: list[str], *, timeout: float) -> RunResult:
        calls.append(argv)
        raise AssertionError("the runner must not be reached")

    with pytest.raises(InvalidTarget):
        runner(SecretsEngine().command([Target(hostile, TargetKind.PATH)], {}), timeout=10)
    assert calls == []


# --- the scan stage: one run per repository, URLs and hostile addresses left out -----------------


def repository(asset_id: str, *addresses: str) -> Asset:
    return Asset(
        asset_id,
        asset_id,
        AssetKind.REPOSITORY,
        "repos",
        "team-orders",
        Environment.PRODUCTION,
        Criticality.HIGH,
        tuple(addresses),
    )


class RecordingRunner(Runner):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv, *, timeout: float) -> RunResult:
        self.calls.append(tuple(argv))
        return super().__call__(argv, timeout=timeout)


def test_the_scan_stage_runs_each_repository_once_and_stores_no_clear_text(
    conn, tmp_path: Path
) -> None:
    orders = make_repository(tmp_path / "orders")
    billing = make_repository(tmp_path / "billing")
    gone = tmp_path / "archived"
    assets = [
        repository("repo-orders", "https://git.example.com/org/orders", str(orders), "/srv/$(id)"),
        repository("repo-billing", f"{billing}/../billing/", "--foo"),
        repository("repo-archived", str(gone)),
    ]
    sync = inventory.start_sync(conn, "repos", "file")
    inventory.apply_source_snapshot(conn, sync, "repos", assets, T0)
    conn.commit()
    runner = RecordingRunner()
    blobs = LocalBlobStore(tmp_path / "blobs")

    outcome = run_batch(
        conn,
        Batch("secrets", ("repo-orders", "repo-billing", "repo-archived")),
        ScanConfig(engines=["secrets"], ports=[443]),
        blobs,
        runner,
        lambda: T0,
        "run-1",
    )

    scans = [c for c in runner.calls if "--version" not in c]
    assert sorted(c[-1] for c in scans) == sorted([str(orders), str(billing), str(gone)])
    assert all(c[-2] == "--" for c in scans)
    joined = json.dumps(runner.calls)
    assert "git.example.com" not in joined and "$(id)" not in joined and "--foo" not in joined
    assert sorted(outcome.rejected_targets) == sorted(
        [
            "invalid target '/srv/$(id)': contains whitespace, control or shell characters",
            "invalid target '--foo': starts with '-' and could be read as an option",
        ]
    )
    runs = conn.execute(
        "SELECT status, asset_ids, scope, error FROM scan_runs ORDER BY id"
    ).fetchall()
    by_assets = {tuple(r[1]): r for r in runs}
    assert by_assets[("repo-orders",)][0] == "succeeded"
    assert by_assets[("repo-orders",)][2] == {"targets": [str(orders)], "ports": []}
    assert by_assets[("repo-billing",)][0] == "succeeded"
    assert by_assets[("repo-archived",)][0] == "failed"
    assert "is not a directory" in by_assets[("repo-archived",)][3]

    rows = conn.execute(
        "SELECT asset_id, payload->>'rule_id', payload->'location'->>'file', payload::text "
        "FROM observations ORDER BY 1, 2"
    ).fetchall()
    assert {(a, r, f) for a, r, f, _ in rows} == {
        (asset, rule, file)
        for asset in ("repo-billing", "repo-orders")
        for rule, file in (
            ("secrets.aws-access-key", "config/settings.py"),
            ("secrets.hex-high-entropy-string", "config/app.yaml"),
            ("secrets.private-key", "deploy/id_rsa"),
        )
    }
    for *_, payload in rows:
        assert_no_clear_text(payload)
    for stored in (tmp_path / "blobs").rglob("*"):
        if stored.is_file():
            assert_no_clear_text(stored.read_text(errors="replace"))
