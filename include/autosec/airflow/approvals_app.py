"""The Approvals page and its JSON API: a FastAPI app the Airflow api-server mounts at /autosec.

Every route needs an authenticated Airflow user (a Bearer token or the UI's ``_token``
cookie), and the approver is that user's name, never a field of the request: the page and the
API decide as whoever Airflow says is signed in. The rules (no self-approval, approvers list,
quorum, a reason on rejection, expiry) are enforced by the store; a refusal is a 409 with the
rule's own message, which the page shows next to the request.

Store calls are synchronous (psycopg), so the routes are plain functions: FastAPI runs them in
its threadpool and the api-server's event loop never waits on the database. This module imports
Airflow's API security at import, so ``autosec.airflow.plugin`` imports it on first use only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field

from autosec.remediation.approvals import ApprovalRefused, ApprovalStatus, DecisionKind
from autosec.store import approvals as store

if TYPE_CHECKING:
    import psycopg

TEMPLATES_DIR = Path(__file__).with_name("templates")
RECENT_DECIDED = 20
MAX_REASON = 2000
_BIGINT_MAX = 2**63 - 1
_APPROVAL_FIELDS = (
    "id",
    "status",
    "kind",
    "summary",
    "rule_id",
    "requester",
    "approvers",
    "quorum",
    "policy_hash",
    "created_at",
    "expires_at",
    "decided_at",
    "escalated_at",
)
_ACTION_FIELDS = ("action", "finding_id", "asset_id", "finding_title", "severity")

Connect = Callable[[], "psycopg.Connection"]
Clock = Callable[[], datetime]
ApprovalId = Annotated[int, PathParam(ge=1, le=_BIGINT_MAX, description="approval request id")]


class DecisionBody(BaseModel):
    """A decision as the page or an API client sends it; who decides comes from the login."""

    model_config = ConfigDict(extra="forbid")

    decision: DecisionKind
    reason: str | None = Field(default=None, max_length=MAX_REASON)


def _connect_from_settings() -> psycopg.Connection:
    from autosec.config.settings import get_settings
    from autosec.store import db

    return db.connect(get_settings().database_url)


def _now() -> datetime:
    return datetime.now(UTC)


def _group(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One item per request: ``list_approvals`` repeats a request once per gated action."""
    grouped: dict[int, dict[str, Any]] = {}
    for row in rows:
        item = grouped.get(row["id"])
        if item is None:
            item = {field: row.get(field) for field in _APPROVAL_FIELDS}
            item["approvers"] = list(item["approvers"] or [])
            item["actions"] = []
            grouped[row["id"]] = item
        if row.get("action") is not None:
            item["actions"].append({field: row.get(field) for field in _ACTION_FIELDS})
    return list(grouped.values())


def _with_decisions(
    conn: psycopg.Connection, items: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    for item in items:
        item["decisions"] = [
            {
                "approver": d["approver"],
                "decision": d["decision"],
                "reason": d["reason"],
                "decided_at": d["decided_at"],
            }
            for d in store.decisions_for(conn, item["id"])
        ]
        item["approved_by"] = sorted(
            {d["approver"] for d in item["decisions"] if d["decision"] == "approve"}
        )
        item["past_expiry"] = item["status"] == "pending" and item["expires_at"] <= now
    return items


def _recent_first(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(items, key=lambda i: (i["decided_at"] or oldest, i["id"]), reverse=True)


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    return env


def _page_headers(nonce: str) -> dict[str, str]:
    # Inline script and style only with this response's nonce; requests only to this origin;
    # framed only by the Airflow UI (same origin).
    policy = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
    )
    return {"Content-Security-Policy": policy, "Referrer-Policy": "same-origin"}


def create_app(connect: Connect | None = None, clock: Clock | None = None) -> FastAPI:
    """The approvals app; ``connect`` opens a store connection per request (default: settings).

    Nothing connects here: the store is reached when a request arrives.
    """
    connect = connect or _connect_from_settings
    clock = clock or _now
    templates = _templates()

    app = FastAPI(
        title="autosec approvals",
        # Every route needs an Airflow login; the generated docs would not, so there are none.
        dependencies=[Depends(get_user)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.middleware("http")
    async def _no_store(request: Request, call_next):
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    def load_one(conn: psycopg.Connection, approval_id: int) -> dict[str, Any]:
        status = store.statuses(conn, [approval_id]).get(approval_id)
        if status is None:
            raise HTTPException(404, f"approval {approval_id} does not exist")
        rows = [r for r in store.list_approvals(conn, status) if r["id"] == approval_id]
        return _with_decisions(conn, _group(rows), clock())[0]

    @app.get("/approvals", response_class=HTMLResponse)
    def approvals_page(user: GetUserDep) -> HTMLResponse:
        """Pending requests first (oldest first), then the most recently decided ones."""
        now = clock()
        with connect() as conn:
            everything = _group(store.list_approvals(conn))
            pending = [i for i in everything if i["status"] == "pending"]
            decided = _recent_first([i for i in everything if i["status"] != "pending"])
            pending = _with_decisions(conn, pending, now)
            decided = _with_decisions(conn, decided[:RECENT_DECIDED], now)
        nonce = secrets.token_urlsafe(16)
        html = templates.get_template("approvals.html.j2").render(
            user=user.get_name(),
            pending=pending,
            decided=decided,
            recent_limit=RECENT_DECIDED,
            max_reason=MAX_REASON,
            nonce=nonce,
            now=now,
        )
        return HTMLResponse(html, headers=_page_headers(nonce))

    @app.get("/api/approvals")
    def list_approvals(
        status: ApprovalStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, Any]]:
        """Requests in id order, at most ``limit`` of them (the newest), with their decisions."""
        with connect() as conn:
            items = _group(store.list_approvals(conn, status))[-limit:]
            return _with_decisions(conn, items, clock())

    @app.get("/api/approvals/{approval_id}")
    def get_approval(approval_id: ApprovalId) -> dict[str, Any]:
        with connect() as conn:
            return load_one(conn, approval_id)

    @app.post("/api/approvals/{approval_id}/decision")
    def decide(approval_id: ApprovalId, body: DecisionBody, user: GetUserDep) -> dict[str, Any]:
        """Record the signed-in user's decision: 409 with the rule's message when refused."""
        approver = user.get_name()
        with connect() as conn:
            if approval_id not in store.statuses(conn, [approval_id]):
                raise HTTPException(404, f"approval {approval_id} does not exist")
            try:
                status = store.decide(
                    conn, approval_id, approver, body.decision, body.reason, clock()
                )
            except ApprovalRefused as exc:
                raise HTTPException(409, exc.reason) from exc
        return {
            "id": approval_id,
            "approver": approver,
            "decision": body.decision,
            "status": status,
        }

    return app
