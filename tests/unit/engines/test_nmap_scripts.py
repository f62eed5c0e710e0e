"""nmap NSE scripts: the allowlist in the argv, the scope a run records, and the parser's
reading of script output (a real run in fixtures/nmap_scripts.xml, edge cases by hand)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.conftest import CORPUS

from autosec.config.estate import NmapScript, ScanConfig
from autosec.domain.models import Location, Severity
from autosec.domain.targets import Target, TargetKind, validate_target
from autosec.engines.base import ScanScope
from autosec.engines.nmap import parser
from autosec.engines.nmap.engine import DEFAULT_SCRIPT_TIMEOUT_SECONDS, NmapEngine
from autosec.engines.nmap.parser import parse_nmap_xml

FIXTURES = Path(__file__).parent / "fixtures"
ENGINE = NmapEngine()
HOST = "127.0.0.1"
# the stand-ins' ports in fixtures/nmap_scripts.xml
PLAIN_HTTP, HARDENED_HTTP, LEGACY_TLS, MODERN_TLS, SSH = 38523, 34963, 44053, 34153, 37251


def targets(*values: str) -> list[Target]:
    return [validate_target(v) for v in values]


def recorded() -> list:
    return parse_nmap_xml((FIXTURES / "nmap_scripts.xml").read_bytes(), {HOST: "a1"})


def report(*ports: str) -> bytes:
    """A complete one-host nmap report around hand-written ``<port>`` elements."""
    return (
        '<?xml version="1.0"?><!DOCTYPE nmaprun><nmaprun scanner="nmap" version="7.93">'
        '<host><status state="up" reason="user-set"/><address addr="10.0.0.5" addrtype="ipv4"/>'
        f"<ports>{''.join(ports)}</ports></host>"
        '<runstats><finished exit="success"/></runstats></nmaprun>'
    ).encode()


def port(number: int, scripts: str, service: str = '<service name="http" method="probed"/>') -> str:
    return (
        f'<port protocol="tcp" portid="{number}"><state state="open" reason="syn-ack"/>'
        f"{service}{scripts}</port>"
    )


def headers_script(*lines: str) -> str:
    text = "&#xa;".join(f"  {line}" for line in (*lines, "", "(Request type: HEAD)"))
    return f'<script id="http-headers" output="&#xa;{text}&#xa;"/>'


def rules_at(raw: bytes, number: int) -> set[str]:
    return {
        o.rule_id
        for o in parse_nmap_xml(raw, {"10.0.0.5": "a"}, require_complete=True)
        if o.location.port == number and o.rule_id in parser.SCRIPT_RULE_IDS
    }


# --- the argv ---------------------------------------------------------------------------------


def test_without_scripts_the_argv_has_no_script_option() -> None:
    for options in ({}, {"scripts": []}):
        argv = ENGINE.command(targets("10.0.0.5"), {"ports": [22], **options})
        assert not any(a.startswith("--script") for a in argv)


def test_scripts_come_in_allowlist_order_once_with_their_timeout() -> None:
    scripts = ["ssh2-enum-algos", "http-title", "ssh2-enum-algos", "ssl-enum-ciphers"]
    argv = ENGINE.command(targets("10.0.0.5"), {"ports": [22, 443], "scripts": scripts})
    at = argv.index("--script")
    assert argv[at : at + 4] == [
        "--script",
        "ssl-enum-ciphers,http-title,ssh2-enum-algos",
        "--script-timeout",
        f"{DEFAULT_SCRIPT_TIMEOUT_SECONDS}s",
    ]
    assert at < argv.index("-p") < argv.index("--")  # options, then the separator, then targets
    argv = ENGINE.command(
        targets("10.0.0.5"), {"scripts": ["http-headers"], "script_timeout_seconds": 30}
    )
    assert argv[argv.index("--script-timeout") + 1] == "30s"


@pytest.mark.parametrize(
    ("scripts", "message"),
    [
        (["vuln"], "'vuln' is not an allowed script"),
        (["http-headers,vuln"], "'http-headers,vuln' is not an allowed script"),
        (["--script=vuln"], "is not an allowed script"),
        (["http-title", "../../tmp/evil.nse"], "'../../tmp/evil.nse' is not an allowed"),
        (["http-title;id"], "is not an allowed script"),
        (["default"], "'default' is not an allowed script"),
        ([None], "None is not an allowed script"),
        ("http-title", "must be a list of script names"),
        ({"http-title": True}, "must be a list of script names"),
    ],
)
def test_a_script_outside_the_allowlist_is_refused(scripts: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ENGINE.command(targets("10.0.0.5"), {"scripts": scripts})
    with pytest.raises(ValueError, match=message):
        ENGINE.scope(targets("10.0.0.5"), {"scripts": scripts})


@pytest.mark.parametrize("timeout", [0, 3601, "30s", True, 1.5])
def test_a_bad_script_timeout_is_refused(timeout: object) -> None:
    with pytest.raises(ValueError, match="script_timeout_seconds"):
        ENGINE.command(
            targets("10.0.0.5"), {"scripts": ["http-title"], "script_timeout_seconds": timeout}
        )


def test_a_path_never_reaches_nmap() -> None:
    assert TargetKind.PATH not in ENGINE.target_kinds
    with pytest.raises(ValueError, match="not paths: /srv/repos/app"):
        ENGINE.command(targets("10.0.0.5", "/srv/repos/app"), {})
    with pytest.raises(ValueError, match="not paths"):
        ENGINE.command([Target("./--script=vuln", TargetKind.PATH)], {})


# --- what a run covers -------------------------------------------------------------------------


def test_the_scope_names_the_rules_of_the_scripts_that_ran() -> None:
    plain = ENGINE.scope(targets("10.0.0.5"), {"ports": [22, 443]})
    assert set(plain.rule_ids) == set(parser.RULE_IDS)
    ssh = ENGINE.scope(targets("10.0.0.5"), {"ports": [22, 443], "scripts": ["ssh2-enum-algos"]})
    assert set(ssh.rule_ids) == set(parser.RULE_IDS) | set(parser.SCRIPT_RULES["ssh2-enum-algos"])
    assert ScanScope.from_dict(ssh.as_dict()) == ssh
    title_only = ENGINE.scope(targets("10.0.0.5"), {"scripts": ["http-title"]})
    assert set(title_only.rule_ids) == set(parser.RULE_IDS)


def test_a_run_without_a_script_closes_none_of_its_findings() -> None:
    tls = Location(host="10.0.0.5", port=443, protocol="tcp")
    ssh = Location(host="10.0.0.5", port=22, protocol="tcp")
    without = ENGINE.scope(targets("10.0.0.5"), {"ports": [22, 443]})
    assert not ENGINE.covers(parser.TLS_WEAK_PROTOCOL, tls, without)
    assert not ENGINE.covers(parser.SSH_WEAK_KEX, ssh, without)
    assert ENGINE.covers(parser.OPEN_PORT, tls, without)
    only_ssh = ENGINE.scope(
        targets("10.0.0.5"), {"ports": [22, 443], "scripts": ["ssh2-enum-algos"]}
    )
    assert ENGINE.covers(parser.SSH_WEAK_KEX, ssh, only_ssh)
    assert not ENGINE.covers(parser.TLS_WEAK_CIPHER, tls, only_ssh)
    every = ENGINE.scope(targets("10.0.0.5"), {"ports": [22, 443], "scripts": list(parser.SCRIPTS)})
    assert ENGINE.covers(parser.TLS_WEAK_CIPHER, tls, every)
    assert ENGINE.covers(parser.HTTP_NO_CSP, tls, every)
    # still bounded by the ports the run looked at
    assert not ENGINE.covers(parser.SSH_WEAK_KEX, Location("10.0.0.5", 2222, "tcp"), every)


def test_a_scope_stored_before_rule_lists_still_covers_every_rule() -> None:
    old = ScanScope.from_dict({"targets": ["10.0.0.5"], "ports": [443]})
    assert old.rule_ids == () and "rule_ids" not in old.as_dict()
    assert ENGINE.covers(parser.OPEN_PORT, Location("10.0.0.5", 443, "tcp"), old)


def test_every_script_rule_is_a_capability() -> None:
    assert ENGINE.rule_ids() >= parser.SCRIPT_RULE_IDS
    assert set(parser.SCRIPTS) == {
        "ssl-enum-ciphers",
        "http-headers",
        "http-title",
        "ssh2-enum-algos",
    }


def test_the_configuration_offers_exactly_the_allowlist() -> None:
    assert typing.get_args(NmapScript) == parser.SCRIPTS
    assert ScanConfig().nmap_scripts == ["ssh2-enum-algos"]
    assert ScanConfig(nmap_scripts=[]).nmap_scripts == []
    with pytest.raises(ValidationError, match=r"nmap_scripts\.0"):
        ScanConfig(nmap_scripts=["vuln"])
    with pytest.raises(ValidationError, match="nmap_scripts"):
        ScanConfig(nmap_scripts="http-title")


# --- the parser on a real run ------------------------------------------------------------------


def test_recorded_run_findings_per_port() -> None:
    by_port: dict[int, set[str]] = {}
    for observation in recorded():
        by_port.setdefault(observation.location.port, set()).add(observation.rule_id)
    headers = {
        parser.HTTP_NO_CSP,
        parser.HTTP_NO_FRAME_OPTIONS,
        parser.HTTP_NO_CONTENT_TYPE_OPTIONS,
    }
    assert by_port == {
        PLAIN_HTTP: {parser.OPEN_PORT} | headers,
        HARDENED_HTTP: {parser.OPEN_PORT},
        LEGACY_TLS: {parser.OPEN_PORT, parser.TLS_WEAK_PROTOCOL, parser.TLS_WEAK_CIPHER}
        | headers
        | {parser.HTTP_NO_HSTS},
        MODERN_TLS: {parser.OPEN_PORT},
        SSH: {
            parser.OPEN_PORT,
            parser.VERSION_DISCLOSED,
            parser.SSH_WEAK_KEX,
            parser.SSH_WEAK_HOSTKEY,
            parser.SSH_WEAK_CIPHER,
            parser.SSH_WEAK_MAC,
        },
    }


def test_recorded_tls_findings() -> None:
    found = {(o.rule_id, o.location.port): o for o in recorded()}
    protocols = found[(parser.TLS_WEAK_PROTOCOL, LEGACY_TLS)]
    assert protocols.title == "Deprecated TLS protocol versions offered: TLSv1.0, TLSv1.1"
    assert protocols.severity is Severity.MEDIUM and protocols.cwe == "CWE-327"
    assert protocols.evidence["weak_protocols"] == ["TLSv1.0", "TLSv1.1"]
    assert protocols.evidence["protocols"] == ["TLSv1.0", "TLSv1.1", "TLSv1.2"]
    assert protocols.location == Location(host=HOST, port=LEGACY_TLS, protocol="tcp")
    ciphers = found[(parser.TLS_WEAK_CIPHER, LEGACY_TLS)]
    assert ciphers.severity is Severity.HIGH and ciphers.evidence["least_strength"] == "F"
    assert "TLSv1.2 TLS_ECDH_anon_WITH_AES_128_CBC_SHA (F)" in ciphers.evidence["weak_ciphers"]
    assert all(c.endswith("(F)") for c in ciphers.evidence["weak_ciphers"])
    assert ciphers.evidence["warnings"] == ["Anonymous key exchange, score capped at F"]


def test_recorded_header_title_and_ssh_findings() -> None:
    found = {(o.rule_id, o.location.port): o for o in recorded()}
    csp = found[(parser.HTTP_NO_CSP, PLAIN_HTTP)]
    assert csp.title == "HTTP response without Content-Security-Policy"
    assert csp.severity is Severity.LOW and csp.cwe == "CWE-693"
    assert csp.evidence["http_title"] == "Orders"
    assert "server" in csp.evidence["response_headers"]
    assert found[(parser.HTTP_NO_HSTS, LEGACY_TLS)].cwe == "CWE-319"
    assert found[(parser.OPEN_PORT, MODERN_TLS)].evidence["http_title"] == "Orders"
    assert "http_title" not in found[(parser.OPEN_PORT, SSH)].evidence

    assert found[(parser.SSH_WEAK_KEX, SSH)].evidence["weak"] == ["diffie-hellman-group1-sha1"]
    assert found[(parser.SSH_WEAK_HOSTKEY, SSH)].evidence["weak"] == ["ssh-dss"]
    cipher = found[(parser.SSH_WEAK_CIPHER, SSH)]
    assert cipher.evidence["weak"] == ["aes128-cbc", "3des-cbc", "arcfour"]
    assert cipher.severity is Severity.MEDIUM  # RC4 and 3DES, not only CBC
    assert "chacha20-poly1305@openssh.com" in cipher.evidence["offered"]
    mac = found[(parser.SSH_WEAK_MAC, SSH)]
    assert mac.evidence["weak"] == ["hmac-md5", "hmac-sha1-96"] and mac.severity is Severity.LOW


# --- the parser on hand-written edge cases -------------------------------------------------------


def test_a_redirect_is_only_asked_for_hsts() -> None:
    tls = '<service name="http" tunnel="ssl" method="probed"/>'
    raw = report(
        port(443, headers_script("Location: https://example.test/", "Server: nginx"), tls),
        port(80, headers_script("Location: https://example.test/")),
    )
    assert rules_at(raw, 443) == {parser.HTTP_NO_HSTS}
    assert rules_at(raw, 80) == set()


def test_csp_frame_ancestors_stands_in_for_x_frame_options_and_nosniff_is_case_blind() -> None:
    raw = report(
        port(
            8080,
            headers_script(
                "Content-Security-Policy: default-src 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options: NoSniff",
            ),
        ),
        port(
            8081,
            headers_script(
                "Content-Security-Policy: default-src 'self'", "x-content-type-options: yes"
            ),
        ),
    )
    assert rules_at(raw, 8080) == set()
    assert rules_at(raw, 8081) == {
        parser.HTTP_NO_FRAME_OPTIONS,
        parser.HTTP_NO_CONTENT_TYPE_OPTIONS,
    }


def test_script_output_without_a_response_reports_nothing() -> None:
    raw = report(
        port(
            80,
            '<script id="http-headers" output="ERROR: Script execution failed (use -d to debug)"/>',
        ),
        port(443, '<script id="ssl-enum-ciphers" output="garbled"/>'),
        port(
            22,
            '<script id="ssh2-enum-algos" output=""><elem key="kex_algorithms">x</elem></script>',
        ),
        port(
            8000, '<script id="http-title" output="Site doesn&apos;t have a title (text/html)."/>'
        ),
    )
    observations = parse_nmap_xml(raw, {"10.0.0.5": "a"})
    assert {o.rule_id for o in observations} == {parser.OPEN_PORT}
    assert all("http_title" not in o.evidence for o in observations)


def test_ssl3_is_high_and_grade_c_is_medium() -> None:
    script = (
        '<script id="ssl-enum-ciphers" output="...">'
        '<table key="SSLv3"><table key="ciphers"><table>'
        '<elem key="name">TLS_RSA_WITH_AES_128_CBC_SHA</elem><elem key="strength">C</elem>'
        "</table></table></table>"
        '<table key="TLSv1.2"><table key="ciphers"><table>'
        '<elem key="name">TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256</elem>'
        '<elem key="strength">A</elem></table></table></table>'
        '<elem key="least strength">C</elem></script>'
    )
    observations = parse_nmap_xml(report(port(443, script)), {"10.0.0.5": "a"})
    found = {o.rule_id: o for o in observations}
    assert found[parser.TLS_WEAK_PROTOCOL].severity is Severity.HIGH
    assert found[parser.TLS_WEAK_PROTOCOL].evidence["weak_protocols"] == ["SSLv3"]
    assert found[parser.TLS_WEAK_CIPHER].severity is Severity.MEDIUM
    assert found[parser.TLS_WEAK_CIPHER].evidence["weak_ciphers"] == [
        "SSLv3 TLS_RSA_WITH_AES_128_CBC_SHA (C)"
    ]


def test_ssh_with_only_modern_algorithms_reports_nothing_and_cbc_alone_is_low() -> None:
    def ssh(ciphers: list[str]) -> str:
        tables = {
            "kex_algorithms": ["curve25519-sha256", "diffie-hellman-group14-sha256"],
            "server_host_key_algorithms": ["rsa-sha2-512", "ssh-ed25519"],
            "encryption_algorithms": ciphers,
            "mac_algorithms": ["hmac-sha2-256-etm@openssh.com", "umac-128-etm@openssh.com"],
        }
        body = "".join(
            f'<table key="{key}">' + "".join(f"<elem>{v}</elem>" for v in values) + "</table>"
            for key, values in tables.items()
        )
        return f'<script id="ssh2-enum-algos" output="...">{body}</script>'

    service = '<service name="ssh" method="probed"/>'
    assert rules_at(report(port(22, ssh(["aes256-gcm@openssh.com"]), service)), 22) == set()
    observations = parse_nmap_xml(
        report(port(22, ssh(["aes256-ctr", "aes256-cbc"]), service)), {"10.0.0.5": "a"}
    )
    (cipher,) = [o for o in observations if o.rule_id == parser.SSH_WEAK_CIPHER]
    assert cipher.severity is Severity.LOW and cipher.evidence["weak"] == ["aes256-cbc"]


def test_scripts_outside_the_allowlist_are_ignored() -> None:
    path = CORPUS / "scanners/DefectDojo__django-DefectDojo/nmap/nmap_script_vulners.xml"
    if not path.exists():
        pytest.skip(f"corpus file missing: {path}")
    raw = path.read_bytes()
    assert b'id="vulners"' in raw
    observations = parse_nmap_xml(raw, {"0.0.0.0/0": "any"})
    assert observations and not {o.rule_id for o in observations} & parser.SCRIPT_RULE_IDS
