"""The autosec pages in the Airflow UI: Posture, Coverage, Findings and Reports beside
Approvals, each with a JSON data endpoint, and the Prometheus metrics. One FastAPI app (the
approvals app with these routes added) that the api-server mounts at /autosec.

Every route needs an authenticated Airflow user (a Bearer token or the UI's ``_token``
cookie). The pages read the daily rollups (``autosec.store.rollups``), so they cost the same at
a thousand findings or millions; the Findings list reads one keyset page along an index.

"Build now" creates a run of the compliance_packs DAG (a framework's pack for a period) or of
the report DAG (the posture report) in-process with Airflow's own ``trigger_dag`` (what the REST
API's trigger endpoint does), after asking Airflow's auth manager whether the signed-in user may
trigger that DAG. The api-server is already connected to the metadata database, while calling
the REST API from inside it would need its public URL, which behind a proxy it does not know.
The run records who triggered it (``triggering_user_name``) and the conf asked for. The form is
protected against cross-site requests by a token bound to the user (HMAC with the api-server's
secret key) and by the Fetch Metadata headers; the JSON endpoint accepts only
``application/json``.

Store calls are synchronous (psycopg), so the routes are plain functions run in FastAPI's
threadpool. This module imports Airflow's API security at import, so ``autosec.airflow.plugin``
imports it on first use only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode, urlsplit

from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import BaseModel, ConfigDict, Field

from autosec.airflow import approvals_app, charts
from autosec.airflow.pages_data import (
    DEFAULT_DAYS,
    FINDINGS_PAGE,
    SEVERITIES,
    BadPageKey,
    FindingQuery,
    coverage_data,
    download_name,
    findings_data,
    posture_data,
    reports_data,
)
from autosec.airflow.prometheus import metrics_text
from autosec.store import rollups

if TYPE_CHECKING:
    import psycopg

    from autosec.config.estate import ScanConfig

TEMPLATES_DIR = Path(__file__).with_name("templates")
STACK_ORDER = tuple(reversed(SEVERITIES))  # info at the bottom, critical on top
REPORT_DAG_ID = "report"
PACKS_DAG_ID = "compliance_packs"
POSTURE = "posture"
MAX_DAYS = 730
OVERDUE_SHOWN = 200
MAX_REPORT_PERIOD_DAYS = 400
CSRF_TTL = timedelta(hours=8)
_BIGINT_MAX = 2**63 - 1
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:+\-]{1,250}$")
# What a stored report may be served as; anything else is sent as opaque bytes.
_MEDIA_TYPES = {
    "text/html",
    "text/csv",
    "application/pdf",
    "application/json",
    "application/zip",
    "application/sarif+json",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
_PAGES = (
    ("posture", "Posture"),
    ("coverage", "Coverage"),
    ("findings", "Findings"),
    ("reports", "Reports"),
    ("approvals", "Approvals"),
)

Connect = Callable[[], "psycopg.Connection"]
Clock = Callable[[], datetime]
ReportId = Annotated[int, PathParam(ge=1, le=_BIGINT_MAX, description="report id")]
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="how many days of history")]


# --- what the app needs from its surroundings -------------------------------------------------


@dataclass(frozen=True)
class TriggeredRun:
    dag_id: str
    run_id: str
    paused: bool


class TriggerRefused(Exception):
    """The report DAG could not be triggered; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


TriggerRun = Callable[[Any, str, dict[str, Any]], TriggeredRun]
ReadReport = Callable[[str], bytes]


def _connect_from_settings() -> psycopg.Connection:
    from autosec.config.settings import get_settings
    from autosec.store import db

    return db.connect(get_settings().database_url)


def _scan_config_from_estate() -> ScanConfig:
    from autosec.airflow.runtime import estate

    return estate().scan


def _now() -> datetime:
    return datetime.now(UTC)


def trigger_dag_run(user: Any, dag_id: str, conf: dict[str, Any]) -> TriggeredRun:
    """Create a manual run of ``dag_id`` as ``user``, if Airflow allows that user to."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import (
        DagAccessEntity,
        DagDetails,
    )
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists
    from airflow.models.dag import DagModel
    from airflow.utils.types import DagRunTriggeredByType

    allowed = get_auth_manager().is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
        user=user,
    )
    if not allowed:
        raise TriggerRefused(403, f"{user.get_name()} may not trigger the {dag_id} DAG")
    try:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name=user.get_name(),
            conf=conf,
        )
    except DagNotFound as exc:
        raise TriggerRefused(
            404,
            f"the {dag_id} DAG is not in Airflow's database yet (has the DAG processor parsed "
            f"it?): {exc}",
        ) from exc
    except DagRunAlreadyExists as exc:
        raise TriggerRefused(409, f"a run of the {dag_id} DAG already exists: {exc}") from exc
    except ValueError as exc:
        raise TriggerRefused(400, str(exc)) from exc
    if run is None:
        raise TriggerRefused(500, f"Airflow created no run of the {dag_id} DAG")
    model = DagModel.get_current(dag_id)
    return TriggeredRun(dag_id, run.run_id, bool(model and model.is_paused))


def read_stored_report(uri: str) -> bytes:
    """The bytes of a report from the report store (``AUTOSEC_DATA_DIR``), never from elsewhere."""
    from autosec.airflow.hooks import ObjectStorageBlobStore
    from autosec.config.settings import get_settings

    base = get_settings().data_dir.rstrip("/") + "/"
    if not uri.startswith(base) or "/../" in uri or uri.endswith("/.."):
        raise FileNotFoundError(f"{uri} is outside the report store {base}")
    return ObjectStorageBlobStore(base).get(uri)


class CsrfTokens:
    """Tokens for the pages' forms: bound to the user and to the time they were issued, signed
    with a secret the api-server workers share, so no server-side state is needed."""

    def __init__(self, secret: bytes, clock: Clock, ttl: timedelta = CSRF_TTL) -> None:
        if len(secret) < 16:
            raise ValueError("the form token secret must be at least 16 bytes")
        self._secret = secret
        self._clock = clock
        self._ttl = ttl

    def _mac(self, user: str, issued: int) -> str:
        message = f"autosec-form\n{user}\n{issued}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, user: str) -> str:
        issued = int(self._clock().timestamp())
        return f"{issued}.{self._mac(user, issued)}"

    def check(self, user: str, token: str | None) -> None:
        """Raise 403 unless ``token`` was issued to ``user`` within the time to live."""
        issued_text, _, mac = (token or "").partition(".")
        if not issued_text.isdigit() or not mac:
            raise HTTPException(403, "the form token is missing or malformed: reload the page")
        issued = int(issued_text)
        if not hmac.compare_digest(mac, self._mac(user, issued)):
            raise HTTPException(403, "the form token is not valid for this user: reload the page")
        age = self._clock().timestamp() - issued
        if age < -60 or age > self._ttl.total_seconds():
            raise HTTPException(403, "the form token has expired: reload the page")


def _default_csrf_secret() -> bytes:
    """The api-server's own secret key (shared by its workers), or a per-process one."""
    from airflow.configuration import conf

    secret = conf.get("api", "secret_key", fallback="") or ""
    if len(secret) >= 16:
        return hashlib.sha256(b"autosec-pages\n" + secret.encode()).digest()
    return secrets.token_bytes(32)


def _check_fetch_site(request: Request) -> None:
    """Browsers say where a request comes from; refuse what another site sent."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise HTTPException(403, f"cross-site form submissions are refused ({site})")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, f"form submitted from another origin ({origin})")


def finding_query(
    team: Annotated[str | None, Query(max_length=200)] = None,
    asset: Annotated[str | None, Query(max_length=500)] = None,
    severity: Annotated[str | None, Query(pattern="^(|critical|high|medium|low|info)$")] = None,
    status: Annotated[
        str, Query(pattern="^(active|any|open|reopened|fixed|accepted|false_positive)$")
    ] = "active",
    kev: Annotated[str | None, Query(pattern="^(|yes|no)$")] = None,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = FINDINGS_PAGE,
) -> FindingQuery:
    """The Findings filters from the query string, each checked before it reaches SQL."""
    return FindingQuery(
        team=team or None,
        asset=asset or None,
        severity=severity or None,
        status=status,
        kev=kev or None,
        after=after or None,
        limit=limit,
    )


Wanted = Annotated[FindingQuery, Depends(finding_query)]


# --- HTML -------------------------------------------------------------------------------------


def _when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _number(value: float | int | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _size(value: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return str(value)  # pragma: no cover


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["percent"] = _percent
    env.filters["number"] = _number
    env.filters["size"] = _size
    env.globals["pages"] = _PAGES
    env.globals["severities"] = SEVERITIES
    env.globals["colours"] = charts.SEVERITY_COLOURS
    return env


def _page_headers(nonce: str) -> dict[str, str]:
    # No script at all; styles only with this response's nonce; forms post only here; framed
    # only by the Airflow UI (same origin).
    policy = (
        "default-src 'none'; script-src 'none'; "
        f"style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
    )
    return {"Content-Security-Policy": policy, "Referrer-Policy": "same-origin"}


class BuildBody(BaseModel):
    """A build request from an API client (JSON only): what to build, and for which period."""

    model_config = ConfigDict(extra="forbid")

    what: str = Field(max_length=64)
    period_start: date | None = None
    period_end: date | None = None


@dataclass(frozen=True)
class BuildRequest:
    dag_id: str
    conf: dict[str, Any]


def build_choices() -> list[tuple[str, str]]:
    """What "build now" offers: the posture report, or compliance packs (all, or one)."""
    from autosec.reporting.framework import FRAMEWORKS
    from autosec.reporting.period import ALL

    return [
        (ALL, "Compliance packs: every framework"),
        *((f, f"Compliance pack: {f}") for f in sorted(FRAMEWORKS)),
        (POSTURE, "Posture report and POA&M (the 30 days up to now; no period)"),
    ]


def build_request(what: str, start: date | None, end: date | None, today: date) -> BuildRequest:
    """Which DAG to run with which conf; a clear 422 for anything it would refuse."""
    choices = [value for value, _ in build_choices()]
    if what not in choices:
        raise HTTPException(422, f"cannot build {what!r}: expected one of {', '.join(choices)}")
    if what == POSTURE:
        return BuildRequest(REPORT_DAG_ID, {})
    if (start is None) != (end is None):
        raise HTTPException(
            422, "give both ends of the period, or neither (the last complete period)"
        )
    conf: dict[str, Any] = {"framework": what, "period_start": None, "period_end": None}
    if start is not None and end is not None:
        if end < start:
            raise HTTPException(422, f"the period ends ({end}) before it starts ({start})")
        if end > today:
            raise HTTPException(422, f"the period ends in the future ({end}; today is {today})")
        if (end - start).days + 1 > MAX_REPORT_PERIOD_DAYS:
            raise HTTPException(
                422,
                f"a pack covers at most {MAX_REPORT_PERIOD_DAYS} days, "
                f"not {(end - start).days + 1}",
            )
        conf.update(period_start=start.isoformat(), period_end=end.isoformat())
    return BuildRequest(PACKS_DAG_ID, {**conf, "dry_run": False})


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def create_router(
    connect: Connect,
    clock: Clock,
    scan_config: Callable[[], ScanConfig],
    trigger_run: TriggerRun,
    read_report: ReadReport,
    csrf: CsrfTokens,
) -> APIRouter:
    templates = _templates()
    router = APIRouter(dependencies=[Depends(get_user)])

    def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        html = templates.get_template(name).render(nonce=nonce, now=clock(), **context)
        return HTMLResponse(html, status_code=status_code, headers=_page_headers(nonce))

    # Posture ------------------------------------------------------------------------------

    @router.get("/api/posture")
    def posture_api(days: Days = DEFAULT_DAYS) -> dict[str, Any]:
        with connect() as conn:
            return posture_data(conn, days)

    @router.get("/posture", response_class=HTMLResponse)
    def posture_page(user: GetUserDep, days: Days = DEFAULT_DAYS) -> HTMLResponse:
        with connect() as conn:
            data = posture_data(conn, days)
        pictures = _posture_charts(data)
        return render("posture.html.j2", user=user.get_name(), page="posture", d=data, **pictures)

    # Coverage -----------------------------------------------------------------------------

    @router.get("/api/coverage")
    def coverage_api(
        limit: Annotated[int, Query(ge=1, le=10_000)] = OVERDUE_SHOWN,
    ) -> dict[str, Any]:
        with connect() as conn:
            return coverage_data(conn, scan_config(), clock().astimezone(UTC).date(), limit)

    @router.get("/coverage", response_class=HTMLResponse)
    def coverage_page(user: GetUserDep) -> HTMLResponse:
        with connect() as conn:
            data = coverage_data(conn, scan_config(), clock().astimezone(UTC).date(), OVERDUE_SHOWN)
        trend = data["trend"]
        chart = charts.lines(
            [t["day"] for t in trend],
            {
                "within cadence": [
                    t["assets_within_cadence"] / t["assets_total"] if t["assets_total"] else None
                    for t in trend
                ]
            },
            {"within cadence": "#15803d"},
            percent=True,
        )
        return render(
            "coverage.html.j2", user=user.get_name(), page="coverage", d=data, trend_chart=chart
        )

    # Findings -----------------------------------------------------------------------------

    def _findings(query: FindingQuery) -> dict[str, Any]:
        try:
            with connect() as conn:
                return findings_data(conn, query, clock().astimezone(UTC).date())
        except BadPageKey as exc:
            raise HTTPException(422, str(exc)) from exc

    @router.get("/api/findings")
    def findings_api(query: Wanted) -> dict[str, Any]:
        return _findings(query)

    @router.get("/findings", response_class=HTMLResponse)
    def findings_page(user: GetUserDep, query: Wanted) -> HTMLResponse:
        data = _findings(query)
        filters = {
            k: v for k, v in data["filters"].items() if v and not (k == "status" and v == "active")
        }
        next_href = (
            "findings?" + urlencode({**filters, "after": data["next"]}) if data["next"] else None
        )
        first_href = "findings?" + urlencode(filters) if query.after else None
        json_href = "api/findings?" + urlencode({k: v for k, v in data["filters"].items() if v})
        return render(
            "findings.html.j2",
            user=user.get_name(),
            page="findings",
            d=data,
            next_href=next_href,
            first_href=first_href,
            json_href=json_href,
        )

    # Reports ------------------------------------------------------------------------------

    @router.get("/api/reports")
    def reports_api() -> dict[str, Any]:
        with connect() as conn:
            return reports_data(conn)

    @router.get("/reports", response_class=HTMLResponse)
    def reports_page(
        user: GetUserDep,
        dag: Annotated[str | None, Query(pattern="^(report|compliance_packs)$")] = None,
        requested: Annotated[str | None, Query(max_length=250)] = None,
        paused: bool = False,
    ) -> HTMLResponse:
        return _reports_page(user.get_name(), requested=requested, dag=dag, paused=paused)

    def _reports_page(
        user: str,
        status_code: int = 200,
        requested: str | None = None,
        dag: str | None = None,
        paused: bool = False,
        refused: str | None = None,
    ) -> HTMLResponse:
        with connect() as conn:
            data = reports_data(conn)
        today = clock().astimezone(UTC).date()
        default_start, default_end = previous_month(today)
        return render(
            "reports.html.j2",
            status_code=status_code,
            user=user,
            page="reports",
            d=data,
            requested=requested if requested and _RUN_ID.match(requested) else None,
            dag=dag or REPORT_DAG_ID,
            paused=paused,
            refused=refused,
            csrf_token=csrf.issue(user),
            choices=build_choices(),
            default_start=default_start,
            default_end=default_end,
            today=today,
        )

    @router.post("/reports", response_class=HTMLResponse)
    def build_from_form(
        request: Request,
        user: GetUserDep,
        what: Annotated[str, Form(max_length=64)],
        period_start: Annotated[date, Form()],
        period_end: Annotated[date, Form()],
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        """The page's "build now" form: Post/Redirect/Get, refusals shown on the page."""
        _check_fetch_site(request)
        csrf.check(user.get_name(), csrf_token)
        today = clock().astimezone(UTC).date()
        try:
            wanted = build_request(what, period_start, period_end, today)
            run = trigger_run(user, wanted.dag_id, wanted.conf)
        except HTTPException as exc:
            return _reports_page(user.get_name(), exc.status_code, refused=str(exc.detail))
        except TriggerRefused as exc:
            return _reports_page(user.get_name(), exc.status, refused=exc.message)
        query = {
            "dag": run.dag_id,
            "requested": run.run_id,
            **({"paused": "true"} if run.paused else {}),
        }
        return RedirectResponse("reports?" + urlencode(query), status_code=303)

    @router.post("/api/reports/build", status_code=202)
    def build_from_api(body: BuildBody, user: GetUserDep) -> dict[str, Any]:
        today = clock().astimezone(UTC).date()
        wanted = build_request(body.what, body.period_start, body.period_end, today)
        try:
            run = trigger_run(user, wanted.dag_id, wanted.conf)
        except TriggerRefused as exc:
            raise HTTPException(exc.status, exc.message) from exc
        return {
            "dag_id": run.dag_id,
            "run_id": run.run_id,
            "paused": run.paused,
            "conf": wanted.conf,
        }

    @router.get("/reports/{report_id}/download")
    def download(report_id: ReportId) -> Response:
        """The stored bytes, only if they still hash to what was recorded."""
        with connect() as conn:
            row = rollups.report(conn, report_id)
        if row is None:
            raise HTTPException(404, f"report {report_id} does not exist")
        try:
            content = read_report(row["path"])
        except FileNotFoundError as exc:
            raise HTTPException(404, f"report {report_id}'s file cannot be read: {exc}") from exc
        sha256 = row["sha256"].strip()
        if hashlib.sha256(content).hexdigest() != sha256:
            raise HTTPException(
                409,
                f"report {report_id} on storage no longer matches its recorded sha256 "
                f"{sha256}: it is not served",
            )
        media_type = row["media_type"] if row["media_type"] in _MEDIA_TYPES else None
        return Response(
            content,
            media_type=media_type or "application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{download_name(row)}"',
                "Content-Security-Policy": "sandbox",
                "ETag": f'"{sha256}"',
                "X-Autosec-SHA256": sha256,
            },
        )

    # Metrics ------------------------------------------------------------------------------

    @router.get("/metrics")
    def metrics() -> Response:
        with connect() as conn:
            text = metrics_text(conn, scan_config(), clock())
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return router


def _posture_charts(data: dict[str, Any]) -> dict[str, Any]:
    series = data["series"]
    days = [p["day"] for p in series]
    open_chart = charts.stacked_area(
        days, {s: [p["open"][s] for p in series] for s in SEVERITIES}, STACK_ORDER
    )
    sla_chart = charts.lines(
        days,
        {
            "SLA breaches": [p["sla_breached"] for p in series],
            "known exploited open": [p["kev_open"] for p in series],
        },
        {"SLA breaches": "#b91c1c", "known exploited open": "#7c3aed"},
    )
    estate_chart = charts.lines(
        days,
        {
            "inventory completeness": [p["inventory_completeness"] for p in series],
            "scanned within cadence": [
                p["assets_within_cadence"] / p["assets_total"] if p["assets_total"] else None
                for p in series
            ],
        },
        {"inventory completeness": "#0f766e", "scanned within cadence": "#2563eb"},
        percent=True,
    )
    ttf_matrix: dict[str, dict[str, dict[str, Any]]] = {}
    for item in data.get("time_to_fix", []):
        ttf_matrix.setdefault(item["label"], {})[item["month"]] = item
    ttf = [t for t in data.get("teams", []) if t["mean_days_to_fix_30d"] is not None]
    ttf_bars = charts.horizontal_bars(
        [
            (t["label"], t["mean_days_to_fix_30d"], f"{t['mean_days_to_fix_30d']:.1f} d")
            for t in sorted(ttf, key=lambda t: t["mean_days_to_fix_30d"])
        ]
    )
    return {
        "open_chart": open_chart,
        "sla_chart": sla_chart,
        "estate_chart": estate_chart,
        "ttf_bars": ttf_bars,
        "ttf_matrix": ttf_matrix,
    }


def create_app(
    connect: Connect | None = None,
    clock: Clock | None = None,
    scan_config: Callable[[], ScanConfig] | None = None,
    trigger_run: TriggerRun | None = None,
    read_report: ReadReport | None = None,
    csrf_secret: bytes | None = None,
) -> FastAPI:
    """The autosec app: Approvals plus these pages; each dependency injectable for tests.

    Nothing connects here: the store is reached when a request arrives.
    """
    connect = connect or _connect_from_settings
    clock = clock or _now
    app = approvals_app.create_app(connect, clock)
    app.title = "autosec"
    app.include_router(
        create_router(
            connect,
            clock,
            scan_config or _scan_config_from_estate,
            trigger_run or trigger_dag_run,
            read_report or read_stored_report,
            CsrfTokens(csrf_secret or _default_csrf_secret(), clock),
        )
    )
    return app
