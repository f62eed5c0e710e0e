"""The detect-secrets parser, on a recorded run (fixtures/README.md says how it was made), on
real baselines from the corpus, and on hand-written edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import CORPUS

from autosec.domain.fingerprint import fingerprint
from autosec.domain.models import Location, Severity
from autosec.engines.secrets.parser import (
    DETECTOR_SEVERITY,
    RULE_IDS,
    SecretsParseError,
    parse_detect_secrets,
    parse_detect_secrets_version,
    rule_id_for,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHA_A = "a" * 40
SHA_B = "b" * 40


def recorded() -> bytes:
    return (FIXTURES / "detect_secrets_scan.json").read_bytes()


def report(results: object, **extra: object) -> bytes:
    return json.dumps({"version": "1.5.0", "results": results, **extra}).encode()


def hit(kind: str, line: int, sha: str = SHA_A, **extra: object) -> dict:
    return {"type": kind, "line_number": line, "hashed_secret": sha, "is_verified": False, **extra}


def test_recorded_scan() -> None:
    observations = parse_detect_secrets(recorded(), "repo-1")
    summary = {(o.rule_id, o.location.file, tuple(o.evidence["lines"])) for o in observations}
    assert summary == {
        ("secrets.aws-access-key", "config/settings.py", (3,)),
        ("secrets.private-key", "deploy/id_rsa", (1,)),
        ("secrets.hex-high-entropy-string", "src/app.yaml", (2,)),
        ("secrets.secret-keyword", "src/app.yaml", (3,)),
    }
    # the keyword match on line 4 of settings.py is the AWS key again: reported once
    by_rule = {o.rule_id: o for o in observations}
    aws = by_rule["secrets.aws-access-key"]
    assert aws.title == "AWS Access Key in config/settings.py:3"
    assert aws.severity is Severity.HIGH and aws.cwe == "CWE-798"
    assert aws.asset_id == "repo-1" and aws.engine == "secrets"
    assert aws.location == Location(file="config/settings.py")
    assert aws.evidence == {
        "detector": "AWS Access Key",
        "file": "config/settings.py",
        "lines": [3],
        "secrets": 1,
        "secret_sha1": ["97b2bea574fc3e9e95dd31f17ca1323224336427"],
        "verified": False,
    }
    assert by_rule["secrets.hex-high-entropy-string"].severity is Severity.LOW
    assert by_rule["secrets.secret-keyword"].severity is Severity.MEDIUM
    assert "/dsr/repo" not in json.dumps([o.evidence for o in observations])  # no worker paths


def test_identity_survives_lines_moving_and_rotation_in_place() -> None:
    before = parse_detect_secrets(report({"app.py": [hit("AWS Access Key", 3, SHA_A)]}), "r")
    after = parse_detect_secrets(report({"app.py": [hit("AWS Access Key", 40, SHA_B)]}), "r")
    assert fingerprint(before[0]) == fingerprint(after[0])
    assert after[0].evidence["lines"] == [40]
    elsewhere = parse_detect_secrets(report({"lib/app.py": [hit("AWS Access Key", 3)]}), "r")
    assert fingerprint(elsewhere[0]) != fingerprint(before[0])


def test_one_observation_per_detector_and_file() -> None:
    observations = parse_detect_secrets(
        report(
            {
                "./settings.py": [
                    hit("AWS Access Key", 9, SHA_B),
                    hit("AWS Access Key", 2, SHA_A),
                    hit("Private Key", 20, "c" * 40),
                ],
                "sub\\win.ini": [hit("Basic Auth Credentials", 1)],
            }
        ),
        "r",
    )
    by_rule = {o.rule_id: o for o in observations}
    aws = by_rule["secrets.aws-access-key"]
    assert aws.location.file == "settings.py"
    assert aws.evidence["lines"] == [2, 9] and aws.evidence["secrets"] == 2
    assert aws.evidence["secret_sha1"] == [SHA_A, SHA_B]
    assert aws.title == "AWS Access Key in settings.py:2 (and 1 more lines)"
    assert by_rule["secrets.basic-auth-credentials"].location.file == "sub/win.ini"
    assert len(observations) == 3


def test_a_generic_match_of_a_specific_secret_is_dropped_but_others_stay() -> None:
    observations = parse_detect_secrets(
        report(
            {
                "a.env": [
                    hit("GitHub Token", 1, SHA_A),
                    hit("Base64 High Entropy String", 1, SHA_A),
                    hit("Base64 High Entropy String", 7, SHA_B),
                ],
                "b.env": [hit("Secret Keyword", 1, SHA_A)],  # another file: kept
            }
        ),
        "r",
    )
    summary = {(o.rule_id, o.location.file, tuple(o.evidence["lines"])) for o in observations}
    assert summary == {
        ("secrets.github-token", "a.env", (1,)),
        ("secrets.base64-high-entropy-string", "a.env", (7,)),
        ("secrets.secret-keyword", "b.env", (1,)),
    }


def test_verified_is_critical_and_unknown_detectors_still_report() -> None:
    verified = {**hit("Stripe Access Key", 5), "is_verified": True}
    observations = parse_detect_secrets(
        report({"pay.py": [verified], "x.cfg": [hit("Acme Corp Token", 2)]}), "r"
    )
    by_rule = {o.rule_id: o for o in observations}
    assert by_rule["secrets.stripe-access-key"].severity is Severity.CRITICAL
    assert by_rule["secrets.stripe-access-key"].evidence["verified"] is True
    assert by_rule["secrets.acme-corp-token"].severity is Severity.MEDIUM
    assert "secrets.acme-corp-token" not in RULE_IDS  # not a capability: never closed by a run


def test_only_known_fields_are_kept_so_clear_text_never_gets_through() -> None:
    leaked = hit("Secret Keyword", 4, secret="hunter2-in-clear", code="password = 'hunter2'")
    raw = report({"app.py": [leaked]}, note="hunter2-in-clear")
    (observation,) = parse_detect_secrets(raw, "r")
    assert "hunter2" not in repr(observation)


def test_rule_ids_are_stable_slugs_of_every_detector() -> None:
    assert rule_id_for("AWS Access Key") == "secrets.aws-access-key"
    assert rule_id_for("Public IP (ipv4)") == "secrets.public-ip-ipv4"
    assert rule_id_for("  NPM tokens ") == "secrets.npm-tokens"
    assert len(set(RULE_IDS)) == len(DETECTOR_SEVERITY)
    with pytest.raises(SecretsParseError, match="no letters or digits"):
        rule_id_for("()")


def test_every_installed_detector_has_a_rule_and_severity() -> None:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    assert set(get_mapping_from_secret_type_to_class()) == set(DETECTOR_SEVERITY)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty detect-secrets output"),
        (b"  \n", "empty detect-secrets output"),
        (b'{"results": ', "malformed detect-secrets JSON at line 1, column 13"),
        (b"[]", "the top level is list"),
        (b'{"version": "1.5.0"}', "'results' must be an object"),
        (b'{"results": []}', "'results' must be an object"),
        (b'{"results": {"a.py": {}}}', "results for 'a.py': expected a list"),
        (b'{"results": {"a.py": ["x"]}}', r"results\['a.py'\]\[0\]: expected an object"),
        (b'{"results": {"": []}}', "results key '' is not a file name"),
    ],
)
def test_unreadable_reports_say_why(raw: bytes, message: str) -> None:
    with pytest.raises(SecretsParseError, match=message):
        parse_detect_secrets(raw, "r")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"line_number": 1, "hashed_secret": SHA_A}, "'type' must be"),
        ({"type": "", "line_number": 1, "hashed_secret": SHA_A}, "'type' must be"),
        ({"type": "Private Key", "line_number": "1", "hashed_secret": SHA_A}, "'line_number'"),
        ({"type": "Private Key", "line_number": True, "hashed_secret": SHA_A}, "'line_number'"),
        ({"type": "Private Key", "line_number": -1, "hashed_secret": SHA_A}, "'line_number'"),
        ({"type": "Private Key", "line_number": 1, "hashed_secret": "hunter2"}, "SHA-1 hex"),
        ({"type": "Private Key", "line_number": 1}, "'hashed_secret' must be a SHA-1"),
    ],
)
def test_bad_entries_name_their_place(entry: dict, message: str) -> None:
    with pytest.raises(SecretsParseError, match=message) as refused:
        parse_detect_secrets(report({"k.pem": [entry]}), "r")
    assert "results['k.pem'][0]" in str(refused.value)
    assert "hunter2" not in str(refused.value)  # a bad hash is not echoed: it may be the secret


def test_bom_crlf_and_str_input() -> None:
    raw = b"\xef\xbb\xbf" + report({"a.py": [hit("Private Key", 1)]}).replace(b", ", b",\r\n")
    assert len(parse_detect_secrets(raw, "r")) == 1
    assert len(parse_detect_secrets(raw.decode("utf-8-sig"), "r")) == 1
    with pytest.raises(TypeError, match="bytes or str"):
        parse_detect_secrets(42, "r")  # type: ignore[arg-type]


def test_version() -> None:
    assert parse_detect_secrets_version("1.5.0\n") == "1.5.0"
    with pytest.raises(SecretsParseError, match="no version"):
        parse_detect_secrets_version("usage: detect-secrets")


# --- real baselines from other projects ----------------------------------------------------------


def corpus(relative: str) -> bytes:
    path = CORPUS / "scanners" / relative
    if not path.exists():
        pytest.skip(f"corpus file missing: {path}")
    return path.read_bytes()


def test_detect_secrets_own_baseline() -> None:
    raw = corpus("Yelp__detect-secrets/detect_secrets/.secrets.baseline")
    expected = json.loads(raw)["results"]
    observations = parse_detect_secrets(raw, "detect-secrets")
    assert {o.location.file for o in observations} == set(expected)
    assert {o.rule_id for o in observations} <= set(RULE_IDS)
    reported = {(o.location.file, h) for o in observations for h in o.evidence["secret_sha1"]}
    listed = {(f, e["hashed_secret"]) for f, entries in expected.items() for e in entries}
    assert reported <= listed
    # every (file, detector) pair of the baseline is one observation, except generic matches
    # of a hash a specific detector already reported in that file
    pairs = {(f, e["type"]) for f, entries in expected.items() for e in entries}
    assert len(observations) <= len(pairs)
    assert {(o.location.file, o.evidence["detector"]) for o in observations} <= pairs
    private = [o for o in observations if o.rule_id == "secrets.private-key"]
    assert private and all(o.severity is Severity.HIGH for o in private)


def test_defectdojo_samples() -> None:
    many = corpus("DefectDojo__django-DefectDojo/detect_secrets/many_findings.json")
    observations = parse_detect_secrets(many, "dd")
    expected = json.loads(many)["results"]
    assert {o.location.file for o in observations} == set(expected)
    assert sum(o.evidence["secrets"] for o in observations) == sum(
        len({e["hashed_secret"] for e in entries}) for entries in expected.values()
    )
    assert {o.rule_id for o in observations} == {"secrets.secret-keyword"}
    none = corpus("DefectDojo__django-DefectDojo/detect_secrets/no_findings.json")
    assert parse_detect_secrets(none, "dd") == []
