"""TCP sweep configuration and the sweep loop, with the connection step replaced by fakes."""

from __future__ import annotations

import asyncio
import errno

import pytest
from pydantic import ValidationError

from autosec.discovery.tcp_sweep import SweepConfig, SweepError, is_self_connect, sweep


def test_ranges_are_canonical_and_ports_sorted_and_unique():
    config = SweepConfig(ranges=["10.0.0.5/29", " 10.0.0.1 "], ports=[443, 22, 443])
    assert config.ranges == ["10.0.0.0/29", "10.0.0.1"]
    assert config.ports == [22, 443]


def test_expansion_is_hosts_only_and_overlaps_count_once():
    config = SweepConfig(
        ranges=["192.168.1.0/29", "192.168.1.6/31", "192.168.1.5", "192.168.1.9"], ports=[22]
    )
    assert list(config.addresses()) == [f"192.168.1.{i}" for i in (1, 2, 3, 4, 5, 6, 7, 9)]
    assert config.address_count() == 8
    assert list(SweepConfig(ranges=["10.9.9.9/32"], ports=[1]).addresses()) == ["10.9.9.9"]


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        (["a;rm -rf /"], "contains whitespace, control or shell characters"),
        (["$(id)"], "contains whitespace, control or shell characters"),
        (["--script=x"], "starts with '-'"),
        (["db.example.com"], "is a hostname: a TCP sweep takes IP addresses or CIDR ranges"),
        (["https://10.0.0.1/"], "is a url"),
        ([], "at least 1 item"),
    ],
)
def test_invalid_ranges_are_refused(ranges, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SweepConfig(ranges=ranges, ports=[22])


def test_too_many_addresses_are_refused_before_sending_anything():
    with pytest.raises(ValidationError) as info:
        SweepConfig(ranges=["10.0.0.0/20", "10.1.0.0/24"], ports=[22])
    assert (
        "ranges 10.0.0.0/20, 10.1.0.0/24 expand to 4348 addresses, more than max_addresses=4096"
        in str(info.value)
    )
    assert SweepConfig(ranges=["10.0.0.0/20"], ports=[22], max_addresses=5000)


@pytest.mark.parametrize(
    "overrides",
    [
        {"ports": [0]},
        {"ports": [65536]},
        {"concurrency": 0},
        {"timeout_seconds": 0},
        {"rate_per_second": -1},
        {"unknown": 1},
    ],
)
def test_invalid_settings_are_refused(overrides):
    with pytest.raises(ValidationError):
        SweepConfig(**{"ranges": ["10.0.0.1"], "ports": [22], **overrides})


def test_self_connect_detection():
    assert is_self_connect(("127.0.0.5", 4000), ("127.0.0.5", 4000))
    assert is_self_connect(("::1", 4000, 0, 0), ("::1", 4000, 0, 0))
    assert not is_self_connect(("127.0.0.1", 51000), ("127.0.0.5", 4000))
    assert not is_self_connect(None, ("127.0.0.5", 4000))


class FakeTransport:
    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class FakeWriter:
    def __init__(self, sockname, peername) -> None:
        self.transport = FakeTransport()
        self._info = {"sockname": sockname, "peername": peername}

    def get_extra_info(self, name):
        return self._info.get(name)


class FakeNetwork:
    """Open ports answer (optionally with a banner); everything else is refused."""

    def __init__(self, open_ports: dict[tuple[str, int], bytes | None], delay: float = 0.0):
        self.open_ports = open_ports
        self.delay = delay
        self.active = 0
        self.peak = 0
        self.attempts: list[tuple[str, int]] = []
        self.writers: list[FakeWriter] = []

    async def __call__(self, host: str, port: int):
        self.attempts.append((host, port))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            if (host, port) not in self.open_ports:
                raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
            reader = asyncio.StreamReader()
            banner = self.open_ports[(host, port)]
            if banner:
                reader.feed_data(banner)
            writer = FakeWriter(("10.255.0.1", 50000 + len(self.attempts)), (host, port))
            self.writers.append(writer)
            return reader, writer
        finally:
            self.active -= 1


def run(config: dict, network) -> list:
    return asyncio.run(sweep(config, open_connection=network))


def test_sweep_reports_open_ports_with_banner_and_bounded_concurrency():
    network = FakeNetwork(
        {
            ("10.0.0.2", 22): b"SSH-2.0-OpenSSH_9.6\r\n",
            ("10.0.0.5", 80): b"\xffHTTP",
            ("10.0.0.6", 22): None,
        },
        delay=0.01,
    )
    config = {
        "ranges": ["10.0.0.0/29"],
        "ports": [22, 80],
        "concurrency": 3,
        "banner_timeout_seconds": 0.05,
    }
    result = run(config, network)
    assert [(o.address, o.port, o.banner) for o in result] == [
        ("10.0.0.2", 22, "SSH-2.0-OpenSSH_9.6\r\n"),
        ("10.0.0.5", 80, "\ufffdHTTP"),
        ("10.0.0.6", 22, None),
    ]
    assert sorted(network.attempts) == sorted(
        (f"10.0.0.{i}", p) for i in range(1, 7) for p in (22, 80)
    )
    assert network.peak == 3
    assert all(w.transport.aborted for w in network.writers)


def test_connect_timeout_counts_as_closed():
    network = FakeNetwork({("10.0.0.1", 22): None}, delay=5)
    result = run({"ranges": ["10.0.0.1"], "ports": [22], "timeout_seconds": 0.05}, network)
    assert result == []


def test_self_connect_is_not_reported_as_open():
    class SelfConnecting(FakeNetwork):
        async def __call__(self, host, port):
            reader, writer = await super().__call__(host, port)
            if host == "10.0.0.1":
                writer._info["sockname"] = (host, port)
            return reader, writer

    network = SelfConnecting({("10.0.0.1", 22): None, ("10.0.0.2", 22): None})
    result = run({"ranges": ["10.0.0.1", "10.0.0.2"], "ports": [22], "banner": False}, network)
    assert [(o.address, o.port) for o in result] == [("10.0.0.2", 22)]


def test_running_out_of_file_descriptors_fails_the_sweep():
    async def exhausted(host, port):
        raise OSError(errno.EMFILE, "Too many open files")

    with pytest.raises(SweepError, match=r"out of sockets while connecting to 10\.0\.0\.1:22"):
        run({"ranges": ["10.0.0.1"], "ports": [22]}, exhausted)


def test_rate_limit_spreads_the_probes():
    network = FakeNetwork({})
    loop_times: list[float] = []

    async def timed(host, port):
        loop_times.append(asyncio.get_running_loop().time())
        return await network(host, port)

    run({"ranges": ["10.0.0.0/29"], "ports": [22], "rate_per_second": 100}, timed)
    assert len(loop_times) == 6
    assert loop_times[-1] - loop_times[0] >= 0.045  # 6 starts at 100/s span at least 50 ms
