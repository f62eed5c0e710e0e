"""The autosec Airflow plugin: the autosec pages and their JSON API inside the Airflow UI.

Registered by the one-line shim in ``plugins/``. The FastAPI app is served by the api-server
under ``/autosec`` behind Airflow's own authentication; each external view puts a page in the
UI navigation and shows it in the UI's iframe: Posture (executives and team leads), Coverage,
Findings (engineers), Reports (compliance officers) and Approvals (approvers).

Every Airflow process imports plugins (scheduler, workers, triggerer), but only the api-server
serves the app, so the app and its imports (FastAPI, Jinja2, Airflow's API security) are built
on first use, not when this module is imported.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/autosec"
APP_NAME = "autosec"


def _view(name: str, slug: str) -> dict[str, Any]:
    return {
        "name": name,
        # Relative (no leading slash): the UI resolves it against its <base href>, so the page
        # is found when Airflow is served under a sub-path ([api] base_url) as well.
        "href": f"{URL_PREFIX.lstrip('/')}/{slug}",
        # Set, so the page is shown inside the Airflow UI (an iframe) at /plugin/autosec-<slug>.
        "url_route": f"autosec-{slug}",
        "destination": "nav",
        # The people each page is for should not have to hunt for it in the "Plugins" submenu.
        "nav_top_level": True,
    }


POSTURE_VIEW = _view("Posture", "posture")
COVERAGE_VIEW = _view("Coverage", "coverage")
FINDINGS_VIEW = _view("Findings", "findings")
REPORTS_VIEW = _view("Reports", "reports")
APPROVALS_VIEW = _view("Approvals", "approvals")


@cache
def _fastapi_apps() -> list[dict[str, Any]]:
    from autosec.airflow.pages_app import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": APP_NAME}]


class AutosecPlugin(AirflowPlugin):
    """The autosec pages (nav items + iframes) and API, served by the Airflow api-server."""

    name = "autosec"
    external_views: ClassVar[list[dict[str, Any]]] = [
        POSTURE_VIEW,
        COVERAGE_VIEW,
        FINDINGS_VIEW,
        REPORTS_VIEW,
        APPROVALS_VIEW,
    ]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _fastapi_apps()
