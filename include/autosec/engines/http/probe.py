"""A small HTTP prober, run as a subprocess by the http engine (standard library only).

    python -I -m autosec.engines.http.probe [--timeout S] [--max-body BYTES] -- URL...

For every URL it sends a fixed set of requests and prints one JSON object per line on stdout:

- ``page``: ``GET URL``. A redirect is followed by hand, at most ``MAX_REDIRECTS`` times, and
  only while the ``Location`` stays on the same host name (``http://a/`` to ``https://a/`` is
  followed, a move to another host is recorded and not followed); each hop is its own line.
- ``trace``: ``TRACE /`` (is the request echoed back?).
- ``git_head``: ``GET /.git/HEAD``; ``env``: ``GET /.env``.

The last three are sent once per origin (scheme, host, port), under the first URL of that
origin; when the page request got no answer at all (timeout, refused, unreachable) they are
not sent but reported as ``skipped``, so a dead host costs one timeout, not four. The first
line, ``{"type": "start", "targets": [...]}``, lists the URLs, and ``{"type": "done", ...}``
closes each, so a reader can tell a complete run from a cut one. A failed request is a line of
``"type": "error"`` whose ``error`` is one of timeout, refused, dns, tls, reset, protocol,
unreachable, skipped or other.

Each request has a hard time limit (``--timeout``, enforced with an interval timer on top of
the socket timeout, so a server that trickles bytes cannot hold it longer), reads at most
``--max-body`` bytes of the body, and never verifies certificates (the tls engine judges
those; here a bad certificate must not hide the HTTP findings). Values that may be secrets are
masked before they are printed: every ``Set-Cookie`` value, and every value in a ``/.env``
body (``KEY=<masked>``); cookie names, attributes and variable names are kept.

Exit status: 0 when every URL was probed (request failures are reported as ``error`` lines),
2 when the arguments are invalid.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import signal
import socket
import ssl
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO
from urllib.parse import urljoin, urlsplit

PROBE_VERSION = "1"
USER_AGENT = f"autosec-http-probe/{PROBE_VERSION}"
MAX_REDIRECTS = 5
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_TIMEOUT_SECONDS = 300.0
MAX_BODY_LIMIT = 4 * 1024 * 1024
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Errors that mean "the server refused this request", not "the server could not be asked".
REFUSAL_ERRORS = frozenset({"reset", "protocol"})

PAGE = "page"
TRACE = "trace"
GIT_HEAD = "git_head"
ENV = "env"
# Requests sent once per origin: (probe name, method, path).
SITE_PROBES: tuple[tuple[str, str, str], ...] = (
    (TRACE, "TRACE", "/"),
    (GIT_HEAD, "GET", "/.git/HEAD"),
    (ENV, "GET", "/.env"),
)
PROBES = (PAGE, *(name for name, _, _ in SITE_PROBES))

MASK = "<masked>"
_ENV_ASSIGNMENT = re.compile(r"^(\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*=).*$")
_UNSAFE_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


class DeadlineExceeded(Exception):
    """A request outlived its hard time limit."""


class ProbeUsageError(ValueError):
    """An argument the probe refuses; the message names it."""


def check_url(value: str) -> str:
    """``value`` if it is an absolute http(s) URL the probe may request, else ProbeUsageError."""
    if _UNSAFE_URL_CHARS.search(value):
        raise ProbeUsageError(f"URL {value!r} contains whitespace or control characters")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ProbeUsageError(f"URL {value!r}: scheme must be http or https")
    if not parts.hostname:
        raise ProbeUsageError(f"URL {value!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ProbeUsageError(f"URL {value!r} carries credentials")
    try:
        _ = parts.port
    except ValueError:
        raise ProbeUsageError(f"URL {value!r}: port is not a number in range") from None
    return value


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` with the default port left out, in lower case."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    shown = f"[{host}]" if ":" in host else host
    port = parts.port
    if port is None or port == (443 if scheme == "https" else 80):
        return f"{scheme}://{shown}"
    return f"{scheme}://{shown}:{port}"


def probe(urls: Sequence[str], timeout: float, max_body: int, out: TextIO) -> None:
    """Probe every URL and write the JSON lines to ``out``."""
    start = {"type": "start", "probe_version": PROBE_VERSION, "targets": list(urls)}
    out.write(json.dumps(start, sort_keys=True) + "\n")
    probed_origins: set[str] = set()
    for url in urls:
        for record in _probe_target(url, timeout, max_body, probed_origins):
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
            out.flush()


def _probe_target(
    target: str, timeout: float, max_body: int, probed_origins: set[str]
) -> Iterator[dict[str, Any]]:
    host = (urlsplit(target).hostname or "").lower()
    url = urlsplit(target)._replace(fragment="").geturl()
    visited: set[str] = set()
    unreachable: dict[str, Any] | None = None
    for hop in range(MAX_REDIRECTS + 1):
        visited.add(url)
        record = _request(target, PAGE, hop, "GET", url, timeout, max_body)
        yield record
        if record["type"] == "error" and record["error"] not in REFUSAL_ERRORS:
            unreachable = record
            break
        location = _header(record.get("headers") or [], "location")
        if record.get("status") not in REDIRECT_STATUSES or not location:
            break
        following = urljoin(url, location)
        parts = urlsplit(following)
        if parts.scheme not in ("http", "https") or (parts.hostname or "").lower() != host:
            break  # another host (or scheme): recorded in the Location header, not followed
        if following in visited or hop == MAX_REDIRECTS:
            break
        url = urlsplit(following)._replace(fragment="").geturl()
    origin = origin_of(target)
    if origin not in probed_origins:
        probed_origins.add(origin)
        for name, method, path in SITE_PROBES:
            if unreachable is not None and origin_of(unreachable["url"]) == origin:
                # the server did not answer at all: three more timeouts would say nothing new
                yield _skipped(target, name, method, origin + path, unreachable)
                continue
            yield _request(target, name, 0, method, origin + path, timeout, max_body)
    yield {"type": "done", "target": target}


def _request(
    target: str, probe_name: str, hop: int, method: str, url: str, timeout: float, max_body: int
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "type": "response",
        "target": target,
        "origin": origin_of(url),
        "probe": probe_name,
        "hop": hop,
        "method": method,
        "url": url,
    }
    started = time.monotonic()
    connection: http.client.HTTPConnection | None = None
    try:
        with _deadline(timeout):
            connection = _connection(url, timeout)
            parts = urlsplit(url)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = {"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
            if method == "TRACE":
                headers["Max-Forwards"] = "0"
            connection.request(method, path, headers=headers)
            response = connection.getresponse()
            body = response.read(max_body + 1)
            record.update(
                status=response.status,
                reason=response.reason,
                http_version="HTTP/1.1" if response.version == 11 else "HTTP/1.0",
                headers=_masked_headers(response.getheaders()),
                body_truncated=len(body) > max_body,
            )
            body = body[:max_body]
            text = body.decode("utf-8", errors="replace")
            record["body_bytes"] = len(body)
            record["body"] = mask_env_body(text) if probe_name == ENV else text
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reported error line
        record["type"] = "error"
        record["error"] = classify_error(exc)
        record["message"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        if connection is not None:
            connection.close()
        record["elapsed_ms"] = round((time.monotonic() - started) * 1000)
    return record


def _skipped(
    target: str, probe_name: str, method: str, url: str, cause: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "type": "error",
        "target": target,
        "origin": origin_of(url),
        "probe": probe_name,
        "hop": 0,
        "method": method,
        "url": url,
        "error": "skipped",
        "message": f"not sent: {cause['method']} {cause['url']} failed ({cause['error']})",
        "elapsed_ms": 0,
    }


def _connection(url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        return http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=_lenient_tls_context()
        )
    return http.client.HTTPConnection(host, parts.port, timeout=timeout)


def _lenient_tls_context() -> ssl.SSLContext:
    """No verification and old protocols allowed: certificates are the tls engine's job."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError):
            pass  # an OpenSSL without them: keep its defaults
    return context


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise DeadlineExceeded in this (main) thread once ``seconds`` have passed."""

    def expire(signum: int, frame: object) -> None:
        raise DeadlineExceeded(f"no complete response within {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def classify_error(exc: BaseException) -> str:
    """A short, stable name for why a request failed (the parser decides what each means)."""
    if isinstance(exc, DeadlineExceeded | TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, socket.gaierror):
        return "dns"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(
        exc,
        ConnectionResetError
        | BrokenPipeError
        | ConnectionAbortedError
        | http.client.RemoteDisconnected
        | http.client.IncompleteRead,
    ):
        return "reset"
    if isinstance(exc, http.client.HTTPException):
        return "protocol"
    if isinstance(exc, OSError):
        return "unreachable"
    return "other"


def _masked_headers(headers: Sequence[tuple[str, str]]) -> list[list[str]]:
    return [
        [name, mask_set_cookie(value) if name.lower() == "set-cookie" else value]
        for name, value in headers
    ]


def mask_set_cookie(value: str) -> str:
    """``name=<masked>; attributes``: the cookie's value may be a session token."""
    first, sep, attributes = value.partition(";")
    name, equals, _ = first.partition("=")
    masked = f"{name.strip()}={MASK}" if equals else MASK
    return masked + (f";{attributes}" if sep else "")


def mask_env_body(text: str) -> str:
    """Mask every value of a dotenv-style body; keep names, comments and blank lines.

    A body that looks like HTML (an application's catch-all page) is left as it is.
    """
    if looks_like_html(text):
        return text
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            lines.append(line)
            continue
        match = _ENV_ASSIGNMENT.match(line)
        lines.append(f"{match.group(1)}{MASK}" if match else MASK)
    return "\n".join(lines)


def looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head


def _header(headers: Sequence[Sequence[str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _positive(kind: type, limit: float):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not 0 < value <= limit:
            raise argparse.ArgumentTypeError(f"{text!r} is not in (0, {limit:g}]")
        return value

    return convert


def main(argv: Sequence[str] | None = None) -> int:
    arguments = argparse.ArgumentParser(
        prog="python -m autosec.engines.http.probe",
        description="Probe http(s) URLs for security headers and exposed files; JSON lines out.",
    )
    arguments.add_argument("--version", action="store_true", help="print the probe version")
    arguments.add_argument(
        "--timeout",
        type=_positive(float, MAX_TIMEOUT_SECONDS),
        default=DEFAULT_TIMEOUT_SECONDS,
        help="hard limit for each request, in seconds",
    )
    arguments.add_argument(
        "--max-body",
        type=_positive(int, MAX_BODY_LIMIT),
        default=DEFAULT_MAX_BODY_BYTES,
        help="bytes of each body to read and print",
    )
    arguments.add_argument("urls", nargs="*", metavar="URL")
    options = arguments.parse_args(argv)
    if options.version:
        print(f"autosec-http-probe {PROBE_VERSION}")
        return 0
    if not options.urls:
        arguments.error("at least one URL is needed")
    try:
        urls = [check_url(url) for url in options.urls]
    except ProbeUsageError as exc:
        arguments.error(str(exc))
    probe(urls, options.timeout, options.max_body, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
