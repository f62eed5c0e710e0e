"""Importer parse throughput on 50 MB reports, against the bare parser of the same file.

Measured: ``list(importer.parse(stream, name))`` (what the import stage runs before anything
touches the store) for a 50 MB Trivy JSON report and a 50 MB nmap XML report, in MB/s
(10^6 bytes) and findings/s. The reports are written here by deterministic generators shaped
like real output: a container image's Trivy report (OS and language packages, each
vulnerability with CVSS, vendor severities, references and a description), and an ``nmap -sV
--script ssl-enum-ciphers,http-headers,http-title,ssh2-enum-algos`` run over a few thousand
hosts (open and closed ports, services with versions, TLS cipher tables, SSH algorithm tables,
HTTP headers, hosts down).

Baselines, in the same run on the same files: a bare ``json.load`` of the Trivy report (the
whole document in memory, no findings made), and a bare ``xml.etree.ElementTree.iterparse``
of the nmap report clearing each element (no DTD checks, no findings); defusedxml's
``iterparse`` is printed beside it, to show what the safe parser the importers must use costs
(defusedxml runs the pure-Python ``XMLParser`` to install its checks). Each figure is the best
of 3, every round with the importers' package URL caches emptied (a report is imported once,
not three times); ratios are importer time / baseline time. Timings are printed, never
asserted; the assertions are about what was parsed.
"""

from __future__ import annotations

import json
import random
import time
import xml.etree.ElementTree as StdlibXml
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from defusedxml import ElementTree as SafeXml

from autosec.engines.importers import base
from autosec.engines.importers.registry import get_importer

MB = 1_000_000
SIZE = 50 * MB
ROUNDS = 3
SEED = 20261102
RESULT_VULNERABILITIES = 2000  # per Trivy result (an OS or a lockfile)
RESULT_PACKAGES = 250


def cold_caches() -> None:
    """Forget the package URLs the importers parsed: each round reads the report afresh, as an
    import of a report never seen before would."""
    base._versionless_purl.cache_clear()
    base.package_purl.cache_clear()


def best_of(rounds: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The shortest wall time of ``rounds`` runs, each with cold caches, and the last result."""
    times = []
    result = None
    for _ in range(rounds):
        cold_caches()
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


# --- a Trivy report ---------------------------------------------------------------------------

_ADVISORY_TEXT = (
    "allows remote attackers to cause a denial of service via crafted input in the parser "
    "function which leads to an out-of-bounds read heap buffer overflow memory corruption when "
    "handling certificate chains cookies headers archives with an integer overflow in length "
    "calculation affecting versions before the fixed release of the library"
)
_WORDS = _ADVISORY_TEXT.split()
_OS_PACKAGES = ["openssl", "curl", "libxml2", "zlib", "glibc", "systemd", "expat", "sqlite3"]
_PIP_PACKAGES = ["requests", "urllib3", "jinja2", "django", "pyyaml", "cryptography", "pillow"]
_SEVERITIES = ["LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH", "CRITICAL", "UNKNOWN"]
_VECTORS = [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:N", 6.5),
    ("CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:N/I:N/A:H", 5.9),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", 5.5),
]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _vulnerability(
    rng: random.Random, number: int, package: str, installed: str, purl_type: str
) -> dict:
    cve = f"CVE-{2015 + number % 10}-{10000 + number}"
    vector, score = rng.choice(_VECTORS)
    namespace = "debian/" if purl_type == "deb" else ""
    return {
        "VulnerabilityID": cve,
        "PkgID": f"{package}@{installed}",
        "PkgName": package,
        "PkgIdentifier": {
            "PURL": f"pkg:{purl_type}/{namespace}{package}@{installed}?arch=amd64",
            "UID": f"{rng.getrandbits(64):016x}",
        },
        "InstalledVersion": installed,
        "FixedVersion": f"{installed}.1",
        "Status": "fixed",
        "Layer": {"DiffID": f"sha256:{rng.getrandbits(256):064x}"},
        "SeveritySource": "nvd",
        "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
        "DataSource": {"ID": "debian", "Name": "Debian Security Tracker", "URL": "https://x/"},
        "Title": f"{package}: {_sentence(rng, 8)}",
        "Description": _sentence(rng, rng.randint(40, 120)),
        "Severity": rng.choice(_SEVERITIES),
        "CweIDs": [f"CWE-{rng.choice([20, 79, 120, 125, 190, 400, 787])}"],
        "VendorSeverity": {"debian": rng.randint(1, 4), "nvd": rng.randint(1, 4)},
        "CVSS": {"nvd": {"V3Vector": vector, "V3Score": score}},
        "References": [
            f"https://security.example.org/{cve}/{i}" for i in range(rng.randint(3, 12))
        ],
        "PublishedDate": "2023-12-07T01:15:07.16Z",
        "LastModifiedDate": "2025-02-13T18:15:33.843Z",
    }


def write_trivy_report(path: Path, size: int) -> int:
    """A Trivy JSON report of at least ``size`` bytes; returns how many vulnerabilities it has.

    Each vulnerability is a distinct (id, package) pair: every one is a finding. A result holds
    2,000 vulnerabilities of 250 packages, so a package comes back with several advisories.
    """
    rng = random.Random(SEED)  # noqa: S311 - repeatable report contents, not a secret
    head = {
        "SchemaVersion": 2,
        "ArtifactName": "registry.example.com/payments/api:2026.11",
        "ArtifactType": "container_image",
        "Metadata": {"OS": {"Family": "debian", "Name": "12.7"}, "RepoTags": ["api:2026.11"]},
    }
    count = 0
    written = 0
    with path.open("w", encoding="utf-8") as out:
        written += out.write(json.dumps(head)[:-1] + ', "Results": [')
        result = 0
        while written < size:
            os_result = result % 2 == 0
            target = "debian 12.7" if os_result else f"app/requirements-{result}.txt"
            meta = {"Target": target, "Class": "os-pkgs" if os_result else "lang-pkgs"}
            meta["Type"] = "debian" if os_result else "pip"
            packages = _OS_PACKAGES if os_result else _PIP_PACKAGES
            purl_type = "deb" if os_result else "pypi"
            written += out.write(("," if result else "") + json.dumps(meta)[:-1])
            written += out.write(', "Vulnerabilities": [')
            for i in range(RESULT_VULNERABILITIES):
                n = i % RESULT_PACKAGES  # each package has several advisories, as in real images
                package = f"{packages[n % len(packages)]}-{result}-{n}"
                installed = f"{1 + n % 9}.{n % 21}.{n % 10}"
                entry = json.dumps(_vulnerability(rng, count, package, installed, purl_type))
                written += out.write(("," if i else "") + entry)
                count += 1
            written += out.write("]}")
            result += 1
        out.write("]}")
    return count


# --- an nmap report ---------------------------------------------------------------------------


def _attribute(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace("\n", "&#xa;")
    )


_TLS_CIPHERS = [
    ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "A"),
    ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "A"),
    ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "A"),
    ("TLS_RSA_WITH_AES_128_CBC_SHA", "A"),
    ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "C"),
    ("TLS_RSA_WITH_RC4_128_SHA", "C"),
]


def _tls_script(rng: random.Random) -> str:
    protocols = ["TLSv1.2", "TLSv1.3"] + (["TLSv1.0"] if rng.random() < 0.3 else [])
    tables, output, grades = [], [], []
    for protocol in protocols:
        ciphers = rng.sample(_TLS_CIPHERS[:4] if protocol == "TLSv1.3" else _TLS_CIPHERS, 4)
        rows = "".join(
            f'<table>\n<elem key="name">{name}</elem>\n<elem key="kex_info">ecdh_x25519</elem>\n'
            f'<elem key="strength">{grade}</elem>\n</table>\n'
            for name, grade in ciphers
        )
        tables.append(
            f'<table key="{protocol}">\n<table key="ciphers">\n{rows}</table>\n'
            '<table key="compressors">\n<elem>NULL</elem>\n</table>\n'
            '<elem key="cipher preference">server</elem>\n</table>\n'
        )
        output.append(f"  {protocol}: \n    ciphers: \n")
        output += [f"      {name} (ecdh_x25519) - {grade}\n" for name, grade in ciphers]
        grades += [grade for _, grade in ciphers]
    least = max(grades)
    return (
        f'<script id="ssl-enum-ciphers" output="{_attribute("".join(output))}">'
        f'{"".join(tables)}<elem key="least strength">{least}</elem>\n</script>'
    )


def _headers_script(rng: random.Random) -> str:
    headers = ["Server: nginx", "Date: Mon, 23 Nov 2026 15:15:58 GMT", "Content-Type: text/html"]
    for header in (
        "Strict-Transport-Security: max-age=31536000",
        "Content-Security-Policy: default-src 'self'",
        "X-Frame-Options: DENY",
        "X-Content-Type-Options: nosniff",
    ):
        if rng.random() < 0.6:
            headers.append(header)
    output = "\n" + "".join(f"  {h}\n" for h in headers) + "  \n  (Request type: HEAD)\n"
    return f'<script id="http-headers" output="{_attribute(output)}"/>'


_SSH_ALGORITHMS = {
    "kex_algorithms": ["diffie-hellman-group1-sha1", "curve25519-sha256", "ecdh-sha2-nistp256"],
    "server_host_key_algorithms": ["ssh-dss", "ssh-rsa", "ssh-ed25519"],
    "encryption_algorithms": ["aes128-cbc", "3des-cbc", "aes128-ctr", "chacha20-poly1305"],
    "mac_algorithms": ["hmac-md5", "hmac-sha1-96", "hmac-sha2-256"],
    "compression_algorithms": ["none"],
}


def _ssh_script(rng: random.Random) -> str:
    tables, output = [], []
    for key, algorithms in _SSH_ALGORITHMS.items():
        offered = rng.sample(algorithms, rng.randint(1, len(algorithms)))
        tables.append(
            f'<table key="{key}">\n'
            + "".join(f"<elem>{a}</elem>\n" for a in offered)
            + "</table>\n"
        )
        output.append(f"  {key}: ({len(offered)})\n" + "".join(f"      {a}\n" for a in offered))
    return (
        f'<script id="ssh2-enum-algos" output="{_attribute("".join(output))}">'
        f"{''.join(tables)}</script>"
    )


def _port(number: int, state: str, service: str = "", scripts: str = "") -> str:
    return (
        f'<port protocol="tcp" portid="{number}"><state state="{state}" reason="syn-ack" '
        f'reason_ttl="0"/>{service}{scripts}</port>\n'
    )


def _host(rng: random.Random, index: int) -> tuple[str, int]:
    """One host element and how many open ports it has."""
    address = f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"
    if rng.random() < 0.05:
        return (
            f'<host starttime="1795446941" endtime="1795446959"><status state="down" '
            f'reason="no-response" reason_ttl="0"/>\n<address addr="{address}" '
            'addrtype="ipv4"/>\n<hostnames>\n</hostnames>\n</host>\n'
        ), 0
    ports = [_port(port, "closed") for port in rng.sample([21, 23, 25, 110, 139, 445], 3)]
    open_ports = 0
    if rng.random() < 0.8:
        ports.append(
            _port(
                22,
                "open",
                '<service name="ssh" product="OpenSSH" version="8.4p1 Debian 5+deb11u3" '
                'extrainfo="protocol 2.0" method="probed" conf="10">'
                "<cpe>cpe:/a:openbsd:openssh:8.4p1</cpe></service>",
                _ssh_script(rng),
            )
        )
        open_ports += 1
    ports.append(
        _port(
            80,
            "open",
            '<service name="http" product="nginx" version="1.22.1" method="probed" conf="10">'
            "<cpe>cpe:/a:igor_sysoev:nginx:1.22.1</cpe></service>",
            _headers_script(rng) + '<script id="http-title" output="Orders"><elem key="title">'
            "Orders</elem>\n</script>",
        )
    )
    ports.append(
        _port(
            443,
            "open",
            '<service name="http" product="nginx" version="1.22.1" tunnel="ssl" method="probed" '
            'conf="10"><cpe>cpe:/a:igor_sysoev:nginx:1.22.1</cpe></service>',
            _tls_script(rng) + _headers_script(rng),
        )
    )
    open_ports += 2
    if rng.random() < 0.3:
        ports.append(
            _port(
                3306,
                "open",
                '<service name="mysql" product="MySQL" version="8.0.36" method="probed" '
                'conf="10"><cpe>cpe:/a:mysql:mysql:8.0.36</cpe></service>',
            )
        )
        open_ports += 1
    return (
        f'<host starttime="1795446941" endtime="1795446959"><status state="up" reason="syn-ack" '
        f'reason_ttl="0"/>\n<address addr="{address}" addrtype="ipv4"/>\n<hostnames>\n'
        f'<hostname name="app-{index}.example.internal" type="PTR"/>\n</hostnames>\n'
        f"<ports>{''.join(ports)}</ports>\n"
        '<times srtt="203" rttvar="1323" to="100000"/>\n</host>\n'
    ), open_ports


def write_nmap_report(path: Path, size: int) -> int:
    """An nmap XML report of at least ``size`` bytes; returns how many ports are open."""
    rng = random.Random(SEED)  # noqa: S311 - repeatable report contents, not a secret
    args = (
        "nmap -sT -sV -T4 -Pn -n --script ssl-enum-ciphers,http-headers,http-title,"
        "ssh2-enum-algos -p 21,22,23,25,80,110,139,443,445,3306 -oX - 10.0.0.0/16"
    )
    open_ports = 0
    hosts = 0
    with path.open("w", encoding="utf-8") as out:
        written = out.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
            f'<nmaprun scanner="nmap" args="{_attribute(args)}" start="1795446941" '
            'version="7.93" xmloutputversion="1.05">\n'
            '<scaninfo type="connect" protocol="tcp" numservices="10" '
            'services="21-23,25,80,110,139,443,445,3306"/>\n<verbose level="0"/>\n'
        )
        while written < size:
            text, count = _host(rng, hosts)
            written += out.write(text)
            open_ports += count
            hosts += 1
        out.write(
            '<runstats><finished time="1795447028" elapsed="6.29" exit="success"/>'
            f'<hosts up="{hosts}" down="0" total="{hosts}"/>\n</runstats>\n</nmaprun>\n'
        )
    return open_ports


# --- the measurements -------------------------------------------------------------------------


@dataclass
class Figures:
    label: str
    seconds: float
    size: int
    findings: int | None = None

    def line(self) -> str:
        rate = f"{self.size / MB / self.seconds:7.1f} MB/s"
        found = f", {self.findings / self.seconds:9,.0f} findings/s" if self.findings else ""
        return f"  {self.label:<44} best {self.seconds:6.2f} s  {rate}{found}"


def import_parse(fmt: str, path: Path) -> Callable[[], list]:
    importer = get_importer(fmt)

    def work() -> list:
        with path.open("rb") as stream:
            return list(importer.parse(stream, str(path)))

    return work


def json_load(path: Path) -> Callable[[], Any]:
    def work() -> Any:
        with path.open("rb") as stream:
            return json.load(stream)

    return work


def iterparse_clearing(iterparse: Callable[[IO[bytes]], Any], path: Path) -> Callable[[], int]:
    def work() -> int:
        elements = 0
        with path.open("rb") as stream:
            for _, element in iterparse(stream):
                element.clear()
                elements += 1
        return elements

    return work


def report(title: str, measured: Figures, *baselines: Figures) -> None:
    print()
    print(title)
    for figures in (measured, *baselines):
        print(figures.line())
    for baseline in baselines:
        ratio = measured.seconds / baseline.seconds
        print(f"  ratio importer / {baseline.label}: {ratio:.2f}")


def test_trivy_importer_against_json_load(tmp_path: Path) -> None:
    path = tmp_path / "trivy-50mb.json"
    vulnerabilities = write_trivy_report(path, SIZE)
    size = path.stat().st_size

    parse_seconds, findings = best_of(ROUNDS, import_parse("trivy", path))
    load_seconds, document = best_of(ROUNDS, json_load(path))

    assert len(findings) == vulnerabilities
    assert len({(f.rule_id, f.location) for f in findings}) == vulnerabilities
    assert sum(len(r["Vulnerabilities"]) for r in document["Results"]) == vulnerabilities
    report(
        f"Trivy JSON, {size / MB:.1f} MB, {vulnerabilities:,} vulnerabilities",
        Figures("trivy importer parse", parse_seconds, size, len(findings)),
        Figures("json.load", load_seconds, size),
    )


def test_nmap_importer_against_iterparse(tmp_path: Path) -> None:
    path = tmp_path / "nmap-50mb.xml"
    open_ports = write_nmap_report(path, SIZE)
    size = path.stat().st_size

    parse_seconds, findings = best_of(ROUNDS, import_parse("nmap-xml", path))
    # Only the file written above is read: a trusted input, parsed bare as the baseline.
    bare_seconds, elements = best_of(
        ROUNDS,
        iterparse_clearing(StdlibXml.iterparse, path),
    )
    safe_seconds, safe_elements = best_of(ROUNDS, iterparse_clearing(SafeXml.iterparse, path))

    rules = Counter(f.rule_id for f in findings)
    assert rules["nmap.open-port"] == open_ports
    assert rules["nmap.tls-weak-cipher"] > 0 and rules["nmap.ssh-weak-mac"] > 0
    assert elements == safe_elements > open_ports
    report(
        f"nmap XML, {size / MB:.1f} MB, {open_ports:,} open ports, {elements:,} elements",
        Figures("nmap-xml importer parse", parse_seconds, size, len(findings)),
        Figures("xml.etree iterparse + clear", bare_seconds, size),
        Figures("defusedxml iterparse + clear", safe_seconds, size),
    )
    print("  findings by rule: " + ", ".join(f"{r} {n:,}" for r, n in sorted(rules.items())))
