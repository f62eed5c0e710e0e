"""A real sweep over loopback: listeners on 127.0.0.x, a /29, and a real self-connect.

Linux answers on every 127.0.0.0/8 address, so the listeners need no set-up beyond binding.
"""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from autosec.discovery.tcp_sweep import SweepConfig, sweep

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(20),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs 127.0.0.0/8 binds"),
]

BANNERS = {"127.0.0.1": b"SSH-2.0-OpenSSH_9.6\r\n", "127.0.0.2": None, "127.0.0.3": b"\xfe220 ftp"}


async def _live_sweep():
    async def serve(banner: bytes | None, reader, writer):
        if banner:
            writer.write(banner)
            await writer.drain()
        try:
            await reader.read()  # hold the connection until the sweep closes it
        finally:
            writer.close()

    servers = []
    for address, banner in BANNERS.items():
        server = await asyncio.start_server(
            lambda r, w, b=banner: serve(b, r, w), address, 0, reuse_address=False
        )
        servers.append(server)
    listening = {(s.sockets[0].getsockname()[0], s.sockets[0].getsockname()[1]) for s in servers}
    ports = sorted({port for _, port in listening})

    # 127.0.0.6 has no listener. Binding the probe's own socket to the address:port it connects to
    # makes the kernel connect the socket to itself, which must not be reported as open.
    self_target = ("127.0.0.6", ports[0])
    self_connect_names = []

    async def connect(host: str, port: int):
        if (host, port) == self_target:
            reader, writer = await asyncio.open_connection(host, port, local_addr=self_target)
            self_connect_names.append(
                (writer.get_extra_info("sockname"), writer.get_extra_info("peername"))
            )
            return reader, writer
        return await asyncio.open_connection(host, port)

    config = SweepConfig(
        ranges=["127.0.0.0/29"], ports=ports, timeout_seconds=1, banner_timeout_seconds=0.2
    )
    try:
        started = time.perf_counter()
        found = await sweep(config, open_connection=connect)
        elapsed = time.perf_counter() - started
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    return listening, found, self_connect_names, elapsed


def test_sweep_finds_exactly_the_listeners_and_drops_the_self_connect():
    listening, found, self_connect_names, elapsed = asyncio.run(_live_sweep())

    assert {(o.address, o.port) for o in found} == listening
    banners = {o.address: o.banner for o in found}
    assert banners == {
        "127.0.0.1": "SSH-2.0-OpenSSH_9.6\r\n",
        "127.0.0.2": None,
        "127.0.0.3": "\ufffd220 ftp",
    }
    assert all(0 <= o.latency_ms < 1000 for o in found)

    # The self-connect really happened (same local and peer address) and was filtered out.
    ((sockname, peername),) = self_connect_names
    assert sockname == peername
    assert ("127.0.0.6", sockname[1]) not in {(o.address, o.port) for o in found}
    assert elapsed < 5
