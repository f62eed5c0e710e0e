"""Discovery source: an asyncio TCP connect sweep of configured ranges and ports.

A connect sweep needs no privileges and no raw sockets, so it runs on any worker. ``get`` does the
network I/O; ``transform`` (pure) turns what answered into blind spots against the inventory.

Guards a production sweep needs: ranges are validated targets (IP or CIDR only) and their
expansion is capped (``max_addresses``) before anything is sent; concurrency is bounded by a fixed
pool of workers; every connect has a timeout; an optional rate limit spreads the probes; a
loopback connection to itself (TCP simultaneous open, local address == peer address) is not
reported as an open port; running out of file descriptors fails the sweep instead of silently
reporting ports as closed.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from autosec.discovery.blind_spots import find_blind_spots
from autosec.domain.models import Asset, BlindSpot
from autosec.domain.targets import InvalidTarget, TargetKind, validate_target

NAME = "tcp_sweep"
BANNER_BYTES = 256
_RESOURCE_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

log = logging.getLogger(__name__)

OpenConnection = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class SweepError(RuntimeError):
    """The sweep could not run to the end; its partial result must not be trusted."""


@dataclass(frozen=True)
class OpenPort:
    """An address:port that accepted a TCP connection, with what it said first."""

    address: str
    port: int
    banner: str | None
    latency_ms: float


class SweepConfig(BaseModel):
    """What to sweep and how hard. Validated before a single packet is sent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ranges: list[str] = Field(min_length=1)
    ports: list[int] = Field(min_length=1)
    concurrency: int = Field(200, ge=1, le=10_000)
    timeout_seconds: float = Field(0.5, gt=0, le=60)
    max_addresses: int = Field(4096, ge=1)
    rate_per_second: float | None = Field(None, gt=0)
    banner: bool = True
    banner_timeout_seconds: float = Field(0.3, gt=0, le=10)

    @field_validator("ranges")
    @classmethod
    def _valid_ranges(cls, ranges: list[str]) -> list[str]:
        canonical = []
        for value in ranges:
            try:
                target = validate_target(value)
            except InvalidTarget as exc:
                raise ValueError(str(exc)) from None
            if target.kind not in (TargetKind.IP, TargetKind.CIDR):
                raise ValueError(
                    f"range {value!r} is a {target.kind.value}: a TCP sweep takes IP addresses "
                    "or CIDR ranges"
                )
            canonical.append(target.value)
        return list(dict.fromkeys(canonical))

    @field_validator("ports")
    @classmethod
    def _valid_ports(cls, ports: list[int]) -> list[int]:
        bad = [p for p in ports if not 1 <= p <= 65535]
        if bad:
            raise ValueError(f"ports out of range 1-65535: {', '.join(map(str, bad))}")
        return sorted(set(ports))

    @model_validator(mode="after")
    def _within_limit(self) -> SweepConfig:
        count = self.address_count()
        if count > self.max_addresses:
            raise ValueError(
                f"ranges {', '.join(self.ranges)} expand to {count} addresses, more than "
                f"max_addresses={self.max_addresses}: split the sweep or raise the limit"
            )
        return self

    def address_count(self) -> int:
        return sum(end - start + 1 for _, start, end in _intervals(self.ranges))

    def addresses(self) -> Iterator[str]:
        """Every address to probe, once, in numeric order (hosts only for CIDR ranges)."""
        for version, start, end in _intervals(self.ranges):
            factory = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
            for number in range(start, end + 1):
                yield str(factory(number))


def _intervals(ranges: Iterable[str]) -> list[tuple[int, int, int]]:
    """The union of the ranges' host addresses as merged (version, first, last) integer spans."""
    spans: list[tuple[int, int, int]] = []
    for value in ranges:
        network = ipaddress.ip_network(value, strict=False)
        first, last = int(network.network_address), int(network.broadcast_address)
        if network.num_addresses > 2:  # like hosts(): no network (and, for IPv4, no broadcast)
            first += 1
            last -= 1 if network.version == 4 else 0
        spans.append((network.version, first, last))
    merged: list[tuple[int, int, int]] = []
    for version, first, last in sorted(spans):
        if merged and merged[-1][0] == version and first <= merged[-1][2] + 1:
            merged[-1] = (version, merged[-1][1], max(merged[-1][2], last))
        else:
            merged.append((version, first, last))
    return merged


class _RateLimiter:
    """Spreads probe starts evenly: at most ``rate`` per second across all workers."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next: float | None = None

    async def wait(self) -> None:
        now = asyncio.get_running_loop().time()
        if self._next is None or self._next < now:
            self._next = now
        delay = self._next - now
        self._next += self._interval
        if delay > 0:
            await asyncio.sleep(delay)


def is_self_connect(sockname: Any, peername: Any) -> bool:
    """True for a socket connected to itself: the kernel's simultaneous open, not a service."""
    if not sockname or not peername:
        return False
    return tuple(sockname[:2]) == tuple(peername[:2])


async def sweep(
    config: SweepConfig | Mapping[str, Any], *, open_connection: OpenConnection | None = None
) -> list[OpenPort]:
    """Connect to every address:port of ``config``; return the open ones sorted by address, port.

    ``open_connection`` defaults to :func:`asyncio.open_connection`; it is injectable so the
    connection step can be observed or shaped in tests.
    """
    config = config if isinstance(config, SweepConfig) else SweepConfig.model_validate(config)
    connect = open_connection or asyncio.open_connection
    probes = ((address, port) for address in config.addresses() for port in config.ports)
    total = config.address_count() * len(config.ports)
    limiter = _RateLimiter(config.rate_per_second) if config.rate_per_second else None
    found: list[OpenPort] = []
    started = time.perf_counter()

    async def worker() -> None:
        # Workers share one generator: next() never awaits, so no two workers get the same probe.
        for address, port in probes:
            if limiter is not None:
                await limiter.wait()
            result = await _probe(connect, address, port, config)
            if result is not None:
                found.append(result)

    tasks = [asyncio.create_task(worker()) for _ in range(min(config.concurrency, total))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    log.info(
        "tcp sweep of %s on %d ports: %d probes, %d open, %.2f s",
        ", ".join(config.ranges),
        len(config.ports),
        total,
        len(found),
        time.perf_counter() - started,
    )
    return sorted(found, key=lambda o: (ipaddress.ip_address(o.address), o.port))


async def _probe(
    connect: OpenConnection, address: str, port: int, config: SweepConfig
) -> OpenPort | None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reader, writer = await asyncio.wait_for(connect(address, port), config.timeout_seconds)
    except TimeoutError:
        return None
    except OSError as exc:
        if exc.errno in _RESOURCE_ERRNOS:
            raise SweepError(
                f"out of sockets while connecting to {address}:{port} ({exc.strerror}): "
                "lower concurrency or raise the file descriptor limit"
            ) from exc
        return None
    latency_ms = round((loop.time() - started) * 1000, 3)
    try:
        if is_self_connect(writer.get_extra_info("sockname"), writer.get_extra_info("peername")):
            log.debug("ignoring self-connect on %s:%d", address, port)
            return None
        banner = None
        if config.banner:
            try:
                async with asyncio.timeout(config.banner_timeout_seconds):
                    banner = await _read_banner(reader)
            except TimeoutError:  # a service that waits for the client to speak first
                banner = None
        return OpenPort(address, port, banner, latency_ms)
    finally:
        writer.transport.abort()


async def _read_banner(reader: asyncio.StreamReader) -> str | None:
    """What the service says first, for evidence; the caller bounds the wait."""
    try:
        data = await reader.read(BANNER_BYTES)
    except OSError:
        return None
    return data.decode("utf-8", errors="replace") if data else None


def get(config: SweepConfig | Mapping[str, Any]) -> list[OpenPort]:
    """Run the sweep to completion (blocking): for a worker task, not inside an event loop."""
    return asyncio.run(sweep(config))


def transform(
    open_ports: Iterable[OpenPort], assets: Iterable[Asset], now: datetime
) -> list[BlindSpot]:
    """Open ports that no inventory asset accounts for. Pure."""
    return find_blind_spots(open_ports, assets, source=NAME, now=now)
