"""The demo estate over real loopback sockets (ephemeral ports), and as nmap sees it."""

from __future__ import annotations

import csv
import ipaddress
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from defusedxml import ElementTree

from autosec.demo.services import (
    DEFAULT_SERVICES,
    MYSQL_SERVER_VERSION,
    DemoEstate,
    mysql_greeting,
)

EPHEMERAL = {"web": 0, "db": 0, "shadow": 0}
DEMO_DIR = Path(__file__).resolve().parents[2] / "include" / "autosec" / "demo"


@pytest.fixture(scope="module")
def estate() -> Iterator[DemoEstate]:
    with DemoEstate(ports=EPHEMERAL, db_linger_seconds=0.3) as running:
        yield running


def _read_packet(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        assert chunk, "connection closed before the packet header"
        header += chunk
    length = int.from_bytes(header[:3], "little")
    payload = b""
    while len(payload) < length:
        chunk = sock.recv(length - len(payload))
        assert chunk, "connection closed mid-packet"
        payload += chunk
    return header + payload


def parse_greeting(packet: bytes) -> dict[str, object]:
    length = int.from_bytes(packet[:3], "little")
    payload = packet[4:]
    assert len(payload) == length
    protocol = payload[0]
    end = payload.index(b"\x00", 1)
    version = payload[1:end].decode()
    pos = end + 1
    connection_id = struct.unpack_from("<I", payload, pos)[0]
    pos += 4 + 8 + 1  # salt part 1 and filler
    caps_low = struct.unpack_from("<H", payload, pos)[0]
    pos += 2 + 1 + 2
    caps_high = struct.unpack_from("<H", payload, pos)[0]
    pos += 2
    salt_len = payload[pos]
    pos += 1 + 10 + max(13, salt_len - 8)
    plugin = payload[pos:].rstrip(b"\x00").decode()
    return {
        "seq": packet[3],
        "protocol": protocol,
        "version": version,
        "connection_id": connection_id,
        "capabilities": caps_low | caps_high << 16,
        "plugin": plugin,
    }


def test_services_bind_their_own_loopback_addresses(estate: DemoEstate) -> None:
    endpoints = estate.endpoints
    assert set(endpoints) == {"web", "db", "shadow"}
    defaults = {s.name: s.host for s in DEFAULT_SERVICES}
    for name, (host, port) in endpoints.items():
        assert host == defaults[name]
        assert port > 0
    assert len({host for host, _ in endpoints.values()}) == 3


def test_web_discloses_apache_version(estate: DemoEstate) -> None:
    host, port = estate.endpoints["web"]
    response = requests.get(f"http://{host}:{port}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Server"] == "Apache/2.4.49 (Unix)"
    assert "It works!" in response.text
    assert "Strict-Transport-Security" not in response.headers
    missing = requests.get(f"http://{host}:{port}/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.headers["Server"] == "Apache/2.4.49 (Unix)"


def test_shadow_is_an_nginx(estate: DemoEstate) -> None:
    host, port = estate.endpoints["shadow"]
    response = requests.get(f"http://{host}:{port}/", timeout=5)
    assert response.status_code == 200
    assert response.headers["Server"] == "nginx/1.18.0"
    assert "nginx" in response.text


def test_db_sends_a_mysql_v10_greeting_then_closes(estate: DemoEstate) -> None:
    host, port = estate.endpoints["db"]
    ids = []
    for _ in range(2):
        with socket.create_connection((host, port), timeout=5) as sock:
            greeting = parse_greeting(_read_packet(sock))
            started = time.monotonic()
            assert sock.recv(1) == b""  # the server hangs up by itself after its short wait
            assert time.monotonic() - started < 3
        assert greeting["seq"] == 0
        assert greeting["protocol"] == 10
        assert greeting["version"] == MYSQL_SERVER_VERSION == "5.5.62-log"
        assert greeting["plugin"] == "mysql_native_password"
        assert greeting["capabilities"] & 0x00080000  # CLIENT_PLUGIN_AUTH
        ids.append(greeting["connection_id"])
    assert ids[1] == ids[0] + 1


def test_greeting_has_fresh_salt_and_no_nul_inside_it() -> None:
    first, second = mysql_greeting("5.5.62-log", 7), mysql_greeting("5.5.62-log", 7)
    assert first[:4] == second[:4]
    assert first != second
    salt1 = first[4 + 1 + 11 + 4 : 4 + 1 + 11 + 4 + 8]
    assert b"\x00" not in salt1


def test_stop_releases_the_ports() -> None:
    estate = DemoEstate(ports=EPHEMERAL, only=["db"])
    with estate:
        assert estate.running
        host, port = estate.endpoints["db"]
        socket.create_connection((host, port), timeout=5).close()
    assert not estate.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5)


def test_only_starts_the_named_services() -> None:
    with DemoEstate(ports=EPHEMERAL, only=["shadow"]) as estate:
        assert list(estate.endpoints) == ["shadow"]


def test_unknown_service_names_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown service.*mail"):
        DemoEstate(ports={"mail": 25})
    with pytest.raises(ValueError, match="only: unknown service"):
        DemoEstate(only=["web", "cache"])


def test_port_in_use_names_the_service_and_stops_the_rest() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.12", 0))
        blocker.listen()
        busy = blocker.getsockname()[1]
        estate = DemoEstate(ports={"web": 0, "db": busy, "shadow": 0})
        with pytest.raises(OSError, match=rf"'db' cannot listen on 127\.0\.0\.12:{busy}"):
            estate.start()
        assert not estate.running


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_nmap_fingerprints_the_estate(estate: DemoEstate) -> None:
    endpoints = estate.endpoints
    hosts = [host for host, _ in endpoints.values()]
    ports = ",".join(str(port) for _, port in endpoints.values())
    argv = ["nmap", "-sT", "-sV", "-Pn", "-n", "--open", "-p", ports, *hosts, "-oX", "-"]
    out = subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout
    seen = {}
    for host in ElementTree.fromstring(out).iter("host"):
        address = host.find("address").get("addr")
        for port in host.iter("port"):
            service = port.find("service")
            seen[(address, int(port.get("portid")))] = {
                k: service.get(k) for k in ("name", "product", "version")
            }
    assert seen[endpoints["web"]] == {
        "name": "http",
        "product": "Apache httpd",
        "version": "2.4.49",
    }
    assert seen[endpoints["db"]] == {"name": "mysql", "product": "MySQL", "version": "5.5.62-log"}
    assert seen[endpoints["shadow"]] == {"name": "http", "product": "nginx", "version": "1.18.0"}


def test_demo_inventory_and_settings_agree_with_the_services() -> None:
    with (DEMO_DIR / "inventory.csv").open(newline="", encoding="utf-8") as fh:
        assets = {row["id"]: row for row in csv.DictReader(fh)}
    inventoried = {a for row in assets.values() for a in row["addresses"].split("|")}
    hosts = {s.name: s.host for s in DEFAULT_SERVICES}
    assert hosts["web"] in assets["web-frontend"]["addresses"].split("|")
    assert hosts["db"] in assets["orders-db"]["addresses"].split("|")
    assert hosts["shadow"] not in inventoried  # the blind spot discovery must find
    assert assets["build-runner"]["addresses"] not in hosts.values()  # nothing listens there

    settings = yaml.safe_load((DEMO_DIR / "estate.yaml").read_text(encoding="utf-8"))
    assert (DEMO_DIR / settings["inventory"][0]["path"]).is_file()
    sweep = settings["discovery"]["tcp_sweep"]
    networks = [ipaddress.ip_network(r) for r in sweep["ranges"]]
    # every network address the inventory lists is inside the swept range (a repository's
    # URL is not a network address: discovery does not sweep for it)
    network_addresses = [a for a in inventoried if "://" not in a]
    assert assets["payments-service"]["addresses"].startswith("https://")
    for address in [*hosts.values(), *network_addresses]:
        assert any(ipaddress.ip_address(address) in n for n in networks), address
    assert {s.port for s in DEFAULT_SERVICES} <= set(sweep["ports"])
    assert {s.port for s in DEFAULT_SERVICES} <= set(settings["scan"]["ports"])
