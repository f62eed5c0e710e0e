"""What the actions that talk to an HTTP API share: endpoints, connections and failed results.

Every action reports a remote failure as a "failed" ``ActionResult`` instead of raising, so the
ledger records it; the helpers here build those results one way for every API: the error names
the method and path (never the credential), ``http_status`` is the answer's status (None when
nothing came back), and ``body`` is a capped excerpt of what the API said.

Endpoints are built from Airflow connections by the Airflow layer; the connection readers here
take any object with the connection's attributes (host, port, schema, password, extra), so this
module needs no Airflow.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import urlsplit

import requests

from autosec.remediation.actions.base import Action, ActionResult

BODY_EXCERPT = 500
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)  # (connect, read) seconds
Timeout = float | tuple[float, float]
JSON_HEADERS: Mapping[str, str] = {"Accept": "application/json", "User-Agent": "autosec"}


# --- answers --------------------------------------------------------------------------------------


def excerpt(text: Any) -> str:
    """At most BODY_EXCERPT characters of ``text`` (bytes are decoded), marked when cut."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text or "")
    return text[:BODY_EXCERPT] + ("…" if len(text) > BODY_EXCERPT else "")


def response_excerpt(response: Any) -> str:
    """The start of a response's body; empty when the body cannot be read."""
    try:
        text = response.text
    except Exception:  # noqa: BLE001 - an unreadable body must not hide the status
        return ""
    return excerpt(text)


def read_json(response: Any) -> Any:
    """The response's JSON, or None when its body is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def listed_by_external_id(listed: Any, key: str) -> dict[str, Any] | None:
    """The first record of a listing with ``external_id == key``, when it carries an id."""
    found = (
        [r for r in listed if isinstance(r, dict) and r.get("external_id") == key]
        if isinstance(listed, list)
        else []
    )
    if not found or found[0].get("id") in (None, ""):
        return None
    return found[0]


# --- failed results -------------------------------------------------------------------------------


def answer_failure(
    key: str, response: Any, error: str, *, http_status: int | None = None
) -> ActionResult:
    """A failed result for an answer the action cannot use; ``http_status`` overrides its own."""
    return ActionResult(
        key,
        "failed",
        detail={
            "error": error,
            "http_status": response.status_code if http_status is None else http_status,
            "body": response_excerpt(response),
        },
    )


def applied(
    key: str, external_ref: str, detail: dict[str, Any], *, created: bool, http_status: int
) -> ActionResult:
    """An applied result; one the API already had (found after a conflict) is a duplicate."""
    detail = {**detail, "created": created}
    if not created:
        detail["duplicate"] = True
    detail["http_status"] = http_status
    return ActionResult(key, "applied", external_ref=external_ref, detail=detail)


def http_failure(key: str, response: Any, method: str, path: str, api: str) -> ActionResult:
    """A failed result for a status the action does not accept."""
    error = f"{api} answered {response.status_code} to {method} {path}"
    return answer_failure(key, response, error)


def transport_failure(key: str, method: str, path: str, exc: BaseException) -> ActionResult:
    """A failed result for a request that got no answer (refused, timed out, reset)."""
    return ActionResult(
        key,
        "failed",
        detail={
            "error": f"{method} {path} did not complete: {type(exc).__name__}: {exc}",
            "http_status": None,
        },
    )


# --- endpoints ------------------------------------------------------------------------------------


def check_base_url(value: str, what: str) -> str:
    """An http(s) base URL with a host and no query, without its trailing slashes."""
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} base_url {value!r} must be an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ValueError(f"{what} base_url {value!r} must not have a query")
    return value.rstrip("/")


class ApiEndpoint:
    """A base URL, a bearer token and a timeout: mixed into each action's frozen endpoint.

    ``what`` names the endpoint in errors: a refused base URL, a missing endpoint.
    """

    what: ClassVar[str]
    default_headers: ClassVar[Mapping[str, str]] = JSON_HEADERS

    base_url: str
    token: str | None
    timeout: Timeout

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", check_base_url(self.base_url, self.what))

    @classmethod
    def from_connection(cls, connection: Any) -> Self:
        """host (a name, or a URL with a base path), port, schema (a further base path),
        password = bearer token; ``extra.timeout`` (seconds) overrides the read timeout. The
        scheme is ``http`` only when the connection type is ``http``."""
        base_url = connection_base_url(connection)
        if base_url is None:
            raise ValueError(f"{cls.what} connection has no host")
        timeout = read_timeout(connection_extra(connection))
        return cls(base_url, connection_token(connection), timeout=timeout)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def headers(self) -> dict[str, str]:
        headers = dict(self.default_headers)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers


E = TypeVar("E", bound=ApiEndpoint)


class ApiAction(Action, Generic[E]):
    """An action carried out through one API endpoint; planning and dry runs need none."""

    endpoint_type: ClassVar[type[ApiEndpoint]]
    endpoint_missing: ClassVar[type[ValueError]]

    def __init__(self, endpoint: E | None = None) -> None:
        self.endpoint = endpoint

    def _endpoint(self) -> E:
        """The endpoint, or ``endpoint_missing`` when there is something to send and none."""
        if self.endpoint is None:
            raise self.endpoint_missing(
                f"{self.name} action: no {self.endpoint_type.what} endpoint configured "
                "(base URL and token)"
            )
        return self.endpoint


def send(
    session: Any, endpoint: ApiEndpoint, method: str, path: str, key: str, **kwargs: Any
) -> Any:
    """The response to ``method path``, or a failed result when no answer came back."""
    try:
        return getattr(session, method.lower())(
            endpoint.url(path), headers=endpoint.headers(), timeout=endpoint.timeout, **kwargs
        )
    except (requests.RequestException, OSError) as exc:
        return transport_failure(key, method, path, exc)


# --- connections ----------------------------------------------------------------------------------


def connection_extra(connection: Any) -> dict[str, Any]:
    """A connection's extra as a dict, from ``extra_dejson`` or a JSON ``extra`` string."""
    extra = getattr(connection, "extra_dejson", None)
    if isinstance(extra, Mapping):
        return dict(extra)
    raw = getattr(connection, "extra", None)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise ValueError("connection extra is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValueError("connection extra must be a JSON object")
    return data


def read_timeout(extra: Mapping[str, Any]) -> Timeout:
    """DEFAULT_TIMEOUT, with the read timeout from ``extra["timeout"]`` (seconds) when set."""
    value = extra.get("timeout")
    return DEFAULT_TIMEOUT if value is None else (DEFAULT_TIMEOUT[0], float(value))


def connection_origin(connection: Any) -> tuple[str, str] | None:
    """``scheme://host[:port]`` and the base path of a connection's host; None without a host.

    The host is a name or a URL with a base path; without a scheme it is ``http`` only when the
    connection type is ``http``, else ``https``.
    """
    host = str(getattr(connection, "host", None) or "").strip().rstrip("/")
    if not host:
        return None
    if "://" in host:
        scheme, _, host = host.partition("://")
    else:
        conn_type = str(getattr(connection, "conn_type", None) or "").lower()
        scheme = "http" if conn_type == "http" else "https"
    netloc, _, path = host.partition("/")
    port = getattr(connection, "port", None)
    if port:
        netloc = f"{netloc}:{int(port)}"
    return f"{scheme}://{netloc}", path


def connection_base_url(connection: Any) -> str | None:
    """The API's base URL: the host's origin and base path, then ``schema`` as a further path."""
    origin = connection_origin(connection)
    if origin is None:
        return None
    base, path = origin
    schema = str(getattr(connection, "schema", None) or "").strip("/")
    joined = "/".join(p for p in (path, schema) if p)
    return base + (f"/{joined}" if joined else "")


def connection_token(connection: Any) -> str | None:
    """The bearer token a connection keeps in its password; None when it has none."""
    return getattr(connection, "password", None) or None
