"""The sslyze JSON parser, on real sslyze 6.3.1 reports (see fixtures/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autosec.domain.models import Location, Severity
from autosec.engines.tls import parser
from autosec.engines.tls.parser import (
    CERT_EXPIRED,
    CERT_EXPIRING,
    CERT_HOSTNAME_MISMATCH,
    CERT_SELF_SIGNED,
    CERT_UNTRUSTED,
    NAMES_SEEN,
    SSL_2_0,
    SSL_3_0,
    TLS_1_0,
    TLS_1_1,
    WEAK_3DES,
    WEAK_ANONYMOUS,
    WEAK_CBC_TLS_1_0,
    WEAK_DES,
    WEAK_EXPORT,
    WEAK_NULL,
    WEAK_RC4,
    TlsIncompleteScan,
    TlsParseError,
    classify_cipher_suite,
    hostname_matches,
    names_in,
    parse_sslyze_json,
    parse_sslyze_version,
)

FIXTURES = Path(__file__).parent / "fixtures"
HOSTS = {"127.0.0.1": "host:127.0.0.1"}


def raw(name: str) -> bytes:
    return (FIXTURES / f"sslyze_{name}.json").read_bytes()


def by_rule(name: str, **kwargs) -> dict[str, object]:
    observations = parse_sslyze_json(raw(name), HOSTS, require_complete=True, **kwargs)
    rules = [o.rule_id for o in observations]
    assert len(rules) == len(set(rules)), f"a rule reported twice for one endpoint: {rules}"
    return {o.rule_id: o for o in observations}


def test_a_modern_self_signed_server_has_only_the_trust_finding() -> None:
    found = by_rule("self_signed")
    assert set(found) == {CERT_SELF_SIGNED, NAMES_SEEN}
    self_signed = found[CERT_SELF_SIGNED]
    assert self_signed.severity is Severity.MEDIUM
    assert self_signed.cwe == "CWE-295"
    assert self_signed.asset_id == "host:127.0.0.1"
    assert self_signed.engine == "tls"
    assert self_signed.location == Location(host="127.0.0.1", port=36041, protocol="tcp")
    assert self_signed.evidence["supported_protocols"] == ["TLS 1.2", "TLS 1.3"]
    assert self_signed.evidence["certificates"][0]["subject"] == "CN=localhost"


def test_names_seen_are_on_every_observation_and_in_their_own() -> None:
    found = by_rule("self_signed")
    assert found[NAMES_SEEN].severity is Severity.INFO
    for observation in found.values():
        assert observation.evidence["names_seen"] == ["localhost", "www.example.test"]
    assert names_in(raw("mismatch")) == {
        "127.0.0.1:35969": ["*.wild.example.test", "other.example.test"]
    }


def test_legacy_protocols_and_weak_suites_from_a_real_tls_1_0_server() -> None:
    found = by_rule("legacy")
    assert set(found) == {
        TLS_1_0, TLS_1_1, WEAK_NULL, WEAK_ANONYMOUS, WEAK_CBC_TLS_1_0, CERT_SELF_SIGNED,
        NAMES_SEEN,
    }  # fmt: skip
    assert found[TLS_1_0].severity is Severity.MEDIUM
    tls_1_0 = found[TLS_1_0].evidence["accepted_cipher_suites"]
    assert "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA" in tls_1_0
    assert "TLS 1.2 TLS_ECDHE_ECDSA_WITH_NULL_SHA" in found[WEAK_NULL].evidence["cipher_suites"]
    anonymous = found[WEAK_ANONYMOUS].evidence["cipher_suites"]
    assert all("_anon_" in suite for suite in anonymous) and anonymous
    cbc = found[WEAK_CBC_TLS_1_0].evidence["cipher_suites"]
    assert cbc and all(s.startswith("TLS 1.0 ") and "_CBC_" in s for s in cbc)
    assert found[WEAK_CBC_TLS_1_0].severity is Severity.LOW
    assert found[TLS_1_0].evidence["supported_protocols"] == ["TLS 1.0", "TLS 1.1", "TLS 1.2"]


def test_every_weak_class_from_the_edited_report() -> None:
    found = by_rule("weak_ciphers_edited")
    for rule in (SSL_2_0, SSL_3_0, WEAK_RC4, WEAK_3DES, WEAK_DES, WEAK_EXPORT):
        assert rule in found, rule
    assert found[SSL_2_0].severity is Severity.HIGH and found[SSL_3_0].severity is Severity.HIGH
    assert found[WEAK_RC4].evidence["cipher_suites"] == [
        "SSL 2.0 SSL_CK_RC4_128_EXPORT40_WITH_MD5",
        "SSL 3.0 TLS_RSA_WITH_RC4_128_SHA",
        "TLS 1.0 TLS_RSA_WITH_RC4_128_MD5",
    ]
    assert found[WEAK_3DES].evidence["cipher_suites"] == [
        "SSL 2.0 SSL_CK_DES_192_EDE3_CBC_WITH_MD5",
        "SSL 3.0 TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    ]
    assert found[WEAK_DES].evidence["cipher_suites"] == [
        "SSL 2.0 SSL_CK_DES_64_CBC_WITH_MD5",
        "TLS 1.0 TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
        "TLS 1.0 TLS_RSA_WITH_DES_CBC_SHA",
    ]
    assert found[WEAK_EXPORT].evidence["cipher_suites"] == [
        "SSL 2.0 SSL_CK_RC4_128_EXPORT40_WITH_MD5",
        "TLS 1.0 TLS_RSA_EXPORT_WITH_DES40_CBC_SHA",
    ]


@pytest.mark.parametrize(
    ("name", "protocol", "anonymous", "expected"),
    [
        ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2", False, []),
        ("TLS_AES_128_GCM_SHA256", "TLS 1.3", False, []),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS 1.2", False, []),
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS 1.0", False, [WEAK_CBC_TLS_1_0]),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS 1.2", False, [WEAK_3DES]),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "TLS 1.0", False, [WEAK_3DES, WEAK_CBC_TLS_1_0]),
        ("TLS_DH_anon_EXPORT_WITH_RC4_40_MD5", "SSL 3.0", False,
         [WEAK_EXPORT, WEAK_ANONYMOUS, WEAK_RC4]),
        ("TLS_ECDH_anon_WITH_NULL_SHA", "TLS 1.2", True, [WEAK_NULL, WEAK_ANONYMOUS]),
        ("TLS_PSK_WITH_AES_128_GCM_SHA256", "TLS 1.2", True, [WEAK_ANONYMOUS]),
        ("TLS_NULL_WITH_NULL_NULL", "TLS 1.2", False, [WEAK_NULL]),
        ("SSL_CK_DES_192_EDE3_CBC_WITH_MD5", "SSL 2.0", False, [WEAK_3DES]),
        ("TLS_RSA_WITH_SEED_CBC_SHA", "TLS 1.1", False, []),
    ],
)  # fmt: skip
def test_cipher_suite_classes(name: str, protocol: str, anonymous: bool, expected: list) -> None:
    assert classify_cipher_suite(name, protocol, anonymous) == expected


def test_an_expired_certificate() -> None:
    found = by_rule("expired")
    assert set(found) == {CERT_EXPIRED, CERT_SELF_SIGNED, NAMES_SEEN}
    expired = found[CERT_EXPIRED]
    assert expired.severity is Severity.HIGH
    assert expired.title == "Certificate expired on 2026-11-20 on 127.0.0.1:35737"
    assert expired.evidence["certificates"][0]["not_valid_after"] == "2026-11-20T15:14:56+00:00"
    assert expired.evidence["scanned_at"].startswith("2026-11-23T15:14:57")


def test_expiry_is_judged_at_the_scan_time_with_the_warning_window() -> None:
    found = by_rule("expiring")
    assert set(found) == {CERT_EXPIRING, CERT_SELF_SIGNED, NAMES_SEEN}
    assert found[CERT_EXPIRING].evidence["warning_days"] == 30
    assert found[CERT_EXPIRING].title.startswith("Certificate expires on 2026-12-03")
    # the certificate has 9.99 days left at the scan: a 9-day window does not reach it
    assert CERT_EXPIRING not in by_rule("expiring", expiry_warning_days=9)
    assert CERT_EXPIRING in by_rule("expiring", expiry_warning_days=10)
    # a certificate valid for a year is not "expiring" in the default window
    assert CERT_EXPIRING not in by_rule("self_signed")


def test_a_certificate_for_other_names_is_a_mismatch_not_untrusted() -> None:
    found = by_rule("mismatch")
    assert set(found) == {CERT_HOSTNAME_MISMATCH, CERT_SELF_SIGNED, NAMES_SEEN}
    mismatch = found[CERT_HOSTNAME_MISMATCH]
    assert mismatch.cwe == "CWE-297"
    assert mismatch.evidence["checked_name"] == "127.0.0.1"
    assert mismatch.evidence["certificates"][0]["dns_names"] == [
        "other.example.test",
        "*.wild.example.test",
    ]


def test_a_chain_from_a_private_ca_is_untrusted_not_self_signed() -> None:
    found = by_rule("untrusted")
    assert set(found) == {CERT_UNTRUSTED, NAMES_SEEN}
    untrusted = found[CERT_UNTRUSTED]
    assert untrusted.evidence["certificates"][0]["chain_length"] == 2
    assert untrusted.evidence["certificates"][0]["issuer"] == "CN=Test Root CA"
    assert "validation failed" in untrusted.evidence["validation_error"]


def test_an_unreachable_or_unresolvable_target_fails_the_run_and_keeps_the_rest() -> None:
    with pytest.raises(TlsIncompleteScan) as caught:
        parse_sslyze_json(raw("unreachable"), HOSTS, require_complete=True)
    unscanned = caught.value.unscanned
    assert len(unscanned) == 2
    assert unscanned[0] == "nonexistent.invalid:443: Could not resolve hostname nonexistent.invalid"
    assert unscanned[1].startswith("127.0.0.1:40799: not reachable over TLS (")
    assert "ServerRejectedConnection" in unscanned[1]
    kept = {(o.rule_id, o.location.port) for o in caught.value.observations}
    assert kept == {(CERT_SELF_SIGNED, 36041), (NAMES_SEEN, 36041)}
    # read leniently, the unreachable target is simply absent: no findings made up for it
    lenient = parse_sslyze_json(raw("unreachable"), HOSTS)
    assert {o.location.port for o in lenient} == {36041}


def test_endpoints_of_unknown_hosts_are_skipped() -> None:
    assert parse_sslyze_json(raw("legacy"), {"10.9.9.9": "other"}) == []
    by_name = parse_sslyze_json(raw("legacy"), {"127.0.0.1.": "dotted"})
    assert {o.asset_id for o in by_name} == {"dotted"}


def _edited(change) -> bytes:
    report = json.loads(raw("self_signed"))
    change(report)
    return json.dumps(report).encode()


def test_a_failed_scan_command_fails_the_run() -> None:
    def fail_tls_1_0(report: dict) -> None:
        command = report["server_scan_results"][0]["scan_result"]["tls_1_0_cipher_suites"]
        command.update(status="ERROR", error_reason="BUG_IN_SSLYZE", result=None)

    with pytest.raises(TlsIncompleteScan, match=r"tls_1_0_cipher_suites failed \(BUG_IN_SSLYZE"):
        parse_sslyze_json(_edited(fail_tls_1_0), HOSTS, require_complete=True)


def test_a_report_without_a_required_command_closes_nothing() -> None:
    def unschedule_certinfo(report: dict) -> None:
        report["server_scan_results"][0]["scan_result"]["certificate_info"] = {
            "status": "NOT_SCHEDULED", "error_reason": None, "error_trace": None, "result": None
        }  # fmt: skip

    with pytest.raises(TlsIncompleteScan, match="certificate_info was not run"):
        parse_sslyze_json(_edited(unschedule_certinfo), HOSTS, require_complete=True)
    # without the certificate, a lenient read reports only what the other commands saw
    assert parse_sslyze_json(_edited(unschedule_certinfo), HOSTS) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty sslyze output"),
        (b"   \n", "empty sslyze output"),
        (b'{"server_scan_results": [', "malformed sslyze JSON at line 1, column 26"),
        (b"[]", "not an sslyze JSON report: .* got list"),
        (b'{"results": []}', r"got dict with keys \['results'\]"),
        (
            b'{"date_scans_completed": "2026-01-01T00:00:00Z", "server_scan_results": {}}',
            "'server_scan_results' is dict, not a list",
        ),
        (b'{"server_scan_results": []}', "no date_scans_completed"),
        (
            b'{"server_scan_results": [], "date_scans_completed": "yesterday"}',
            "not an ISO 8601 timestamp: 'yesterday'",
        ),
        (
            b'{"date_scans_completed": "2026-01-01T00:00:00Z", "server_scan_results": [1]}',
            r"server_scan_results\[0\] is not an object",
        ),
        (
            b'{"date_scans_completed": "2026-01-01T00:00:00Z", "server_scan_results": '
            b'[{"server_location": {"hostname": "a", "port": 70000}}]}',
            "bad port: 70000",
        ),
    ],
)
def test_unreadable_output_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(TlsParseError, match=message):
        parse_sslyze_json(data, HOSTS)


def test_an_empty_run_is_empty() -> None:
    data = b'{"date_scans_completed": "2026-01-01T00:00:00Z", "server_scan_results": []}'
    assert parse_sslyze_json(data, HOSTS, require_complete=True) == []


def test_parsing_is_deterministic() -> None:
    assert parse_sslyze_json(raw("legacy"), HOSTS) == parse_sslyze_json(raw("legacy"), HOSTS)


@pytest.mark.parametrize(
    ("hostname", "dns_names", "ips", "cns", "expected"),
    [
        ("www.example.com", ["www.example.com"], [], [], True),
        ("WWW.Example.COM.", ["www.example.com"], [], [], True),
        ("a.example.com", ["*.example.com"], [], [], True),
        ("example.com", ["*.example.com"], [], [], False),
        ("a.b.example.com", ["*.example.com"], [], [], False),
        ("example.com", ["*.com"], [], [], False),
        ("www.example.com", [], [], ["www.example.com"], True),  # CN only when no SAN
        ("www.example.com", ["other.example.com"], [], ["www.example.com"], False),
        ("10.0.0.5", ["10.0.0.5"], [], [], False),  # an address needs an IP SAN
        ("10.0.0.5", [], ["10.0.0.5"], [], True),
        ("::1", [], ["0:0:0:0:0:0:0:1"], [], True),
        ("10.0.0.5", [], [], ["10.0.0.5"], False),
    ],
)
def test_hostname_matching(hostname, dns_names, ips, cns, expected) -> None:
    assert hostname_matches(hostname, dns_names, ips, cns) is expected


def test_version() -> None:
    assert parse_sslyze_version("usage: sslyze ...\n\nSSLyze version 6.3.1\n\n") == "6.3.1"
    with pytest.raises(TlsParseError, match="no 'SSLyze version' line"):
        parse_sslyze_version("python: No module named sslyze")


def test_every_rule_has_its_text() -> None:
    assert set(parser.RULE_TEXT) == set(parser.RULE_IDS)
    assert len(parser.RULE_IDS) == len(set(parser.RULE_IDS))
