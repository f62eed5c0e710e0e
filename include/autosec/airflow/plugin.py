"""The autosec Airflow plugin: the Approvals page and its JSON API inside the Airflow UI.

Registered by the one-line shim in ``plugins/``. The FastAPI app is served by the api-server
under ``/autosec`` behind Airflow's own authentication; the external view puts "Approvals" in
the UI navigation and shows the page in the UI's iframe.

Every Airflow process imports plugins (scheduler, workers, triggerer), but only the api-server
serves the app, so the app and its imports (FastAPI, Jinja2, Airflow's API security) are built
on first use, not when this module is imported.
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/autosec"

APPROVALS_VIEW: dict[str, Any] = {
    "name": "Approvals",
    # Relative (no leading slash): the UI resolves it against its <base href>, so the page
    # is found when Airflow is served under a sub-path ([api] base_url) as well.
    "href": f"{URL_PREFIX.lstrip('/')}/approvals",
    # Set, so the page is shown inside the Airflow UI (an iframe) at /plugin/autosec-approvals.
    "url_route": "autosec-approvals",
    "destination": "nav",
    # Approvers should not have to hunt for it in the "Plugins" submenu.
    "nav_top_level": True,
}


@cache
def _fastapi_apps() -> list[dict[str, Any]]:
    from autosec.airflow.approvals_app import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "autosec approvals"}]


class AutosecPlugin(AirflowPlugin):
    """Approvals page (nav item + iframe) and API, served by the Airflow api-server."""

    name = "autosec"
    external_views: ClassVar[list[dict[str, Any]]] = [APPROVALS_VIEW]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return _fastapi_apps()
