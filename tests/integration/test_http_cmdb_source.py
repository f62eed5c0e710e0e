"""The HTTP CMDB source over real HTTP against the ServiceNow-like stand-in: every paging style,
the field mapping and value maps, rejected records located by page, and failed sources."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from autosec.demo.backstage import Fault
from autosec.demo.cmdb import CmdbServer
from autosec.domain.models import AssetKind, Criticality, Environment
from autosec.inventory.file import SourceError
from autosec.inventory.http_cmdb import (
    CmdbEndpoint,
    CmdbSourceConfig,
    FieldMapping,
    PagingConfig,
    collect,
    get,
    transform,
)
from autosec.inventory.registry import get_source

TOKEN = "cmdb-s3cret"
TABLE = "/api/now/table/cmdb_ci_server"
SOURCE = "servicenow"


def ci(number: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "sys_id": f"{number:032x}",
        "name": f"srv-{number:02d}",
        "sys_class_name": "cmdb_ci_linux_server",
        "ip_address": f"10.0.0.{number}",
        "fqdn": f"srv-{number:02d}.corp.example.com",
        "environment": "Production",
        "business_criticality": "2 - somewhat critical",
        "support_group": {"display_value": "Linux Ops", "link": "https://x/sys_user_group/1"},
        "operational_status": "1",
    }
    record.update(overrides)
    return record


RECORDS = [
    ci(1),
    ci(2, environment="Development", business_criticality="1 - most critical"),
    ci(3, sys_class_name="cmdb_ci_db_mysql_instance", fqdn=""),
    ci(4, environment="QA", ip_address="10.0.0.4, 10.0.1.4"),
    {k: v for k, v in ci(5).items() if k != "sys_id"},  # no id: rejected
    ci(6, operational_status="2"),
    ci(7, business_criticality="4 - not critical"),
]

MAPPING = FieldMapping(
    id="sys_id",
    name="name",
    owner="support_group.display_value",
    addresses=["ip_address", "fqdn"],
    kind="sys_class_name",
    environment="environment",
    criticality="business_criticality",
    kind_map={"cmdb_ci_linux_server": "host", "cmdb_ci_db_mysql_instance": "database"},
    environment_map={"Production": "production", "Development": "development", "QA": "test"},
    criticality_map={
        "1 - most critical": "business_critical",
        "2 - somewhat critical": "high",
        "3 - less critical": "medium",
        "4 - not critical": "low",
    },
    id_prefix="snow:",
)

STYLES = {
    "page": PagingConfig(style="page", page_size=2, total_path="total"),
    "page-until-empty": PagingConfig(style="page", page_size=3),
    "offset": PagingConfig(
        style="offset", page_size=2, size_param="sysparm_limit", offset_param="sysparm_offset"
    ),
    "cursor-token": PagingConfig(
        style="cursor",
        page_size=2,
        size_param="limit",
        next_path="meta.next",
        total_path="meta.total",
    ),
    "cursor-url": PagingConfig(
        style="cursor", page_size=2, size_param="limit", next_path="links.next", next_kind="url"
    ),
}


@pytest.fixture
def records_file(tmp_path: Path) -> Path:
    path = tmp_path / "cmdb.json"
    path.write_text(json.dumps({"cmdb_ci_server": RECORDS, "cmdb_ci_app": []}))
    return path


@pytest.fixture
def cmdb(records_file: Path) -> Iterator[CmdbServer]:
    with CmdbServer(records_file, token=TOKEN) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def endpoint(server: CmdbServer, token: str | None = TOKEN, **kw: Any) -> CmdbEndpoint:
    return CmdbEndpoint(server.url, token, path=TABLE, **kw)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_every_paging_style_lists_every_record_once(cmdb, session, style):
    rows = get(endpoint(cmdb), session, STYLES[style], source_name=SOURCE)
    assert [r.data["name"] for r in rows] == [r["name"] for r in RECORDS]
    size = STYLES[style].page_size
    assert [(r.page, r.index) for r in rows] == [(i // size + 1, i % size) for i in range(7)]
    queries = cmdb.tables.queries
    expected_requests = {"page": 4, "page-until-empty": 4, "offset": 5}.get(style, 4)
    assert len(queries) == expected_requests


def test_the_mapping_and_value_maps_make_assets(cmdb, session):
    rows = get(endpoint(cmdb), session, STYLES["page"], source_name=SOURCE)
    batch = transform(rows, SOURCE, MAPPING)
    by_name = {a.name: a for a in batch.assets}
    assert sorted(by_name) == ["srv-01", "srv-02", "srv-03", "srv-04", "srv-06", "srv-07"]
    one = by_name["srv-01"]
    assert one.id == "snow:" + f"{1:032x}"
    assert (one.kind, one.environment, one.criticality) == (
        AssetKind.HOST,
        Environment.PRODUCTION,
        Criticality.HIGH,
    )
    assert one.owner == "Linux Ops"
    assert one.addresses == ("10.0.0.1", "srv-01.corp.example.com")
    assert by_name["srv-02"].environment is Environment.DEVELOPMENT
    assert by_name["srv-02"].criticality is Criticality.BUSINESS_CRITICAL
    assert by_name["srv-03"].kind is AssetKind.DATABASE
    assert by_name["srv-03"].addresses == ("10.0.0.3",)  # the empty fqdn is no address
    assert by_name["srv-04"].environment is Environment.TEST
    assert by_name["srv-04"].addresses == ("10.0.0.4", "10.0.1.4", "srv-04.corp.example.com")
    assert by_name["srv-07"].criticality is Criticality.LOW


@pytest.mark.parametrize("style", ["page", "offset", "cursor-token"])
def test_a_record_missing_the_id_is_rejected_with_its_page_and_item(cmdb, session, style):
    batch = transform(
        get(endpoint(cmdb), session, STYLES[style], source_name=SOURCE), SOURCE, MAPPING
    )
    (reject,) = batch.rejects
    assert reject.position == f"{SOURCE} page 3 item 0"
    assert reject.reason == f"{SOURCE} page 3 item 0: field 'id' (at 'sys_id'): missing"
    assert reject.raw["name"] == "srv-05"
    assert reject.asset_id is None
    assert len(batch.assets) == 6


def test_query_params_are_sent_and_basic_auth_works(cmdb, session):
    config = CmdbSourceConfig(
        name=SOURCE,
        kind="http_cmdb",
        conn_id="autosec_cmdb",
        path=TABLE,
        params={"sysparm_query": "operational_status=1"},
        paging=STYLES["offset"],
        mapping=MAPPING,
    )
    basic = CmdbEndpoint(cmdb.url, TOKEN, username="svc-autosec")
    batch = collect(config, basic, session)
    assert "srv-06" not in {a.name for a in batch.assets}
    assert len(batch.assets) == 5 and len(batch.rejects) == 1
    assert all(q["sysparm_query"] == ["operational_status=1"] for q in cmdb.tables.queries)


def test_the_registry_resolves_the_source_and_an_empty_table_syncs_nothing(cmdb, session):
    module = get_source("http_cmdb")
    apps = CmdbEndpoint(cmdb.url, TOKEN, path="/api/now/table/cmdb_ci_app")
    rows = module.get(apps, session, STYLES["page"], source_name=SOURCE)
    assert rows == []
    assert module.transform(rows, SOURCE, MAPPING).assets == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            Fault(after=1, status=500),
            r"^inventory source 'servicenow': page 2 \(page=2\): GET http://127\.0\.0\.1:\d+"
            r"/api/now/table/cmdb_ci_server answered 500: .*injected fault",
        ),
        (
            Fault(after=1, body=b'{"result": [{"sys_id": "x"'),
            r"^inventory source 'servicenow': page 2 \(page=2\): GET .*: "
            r"the answer is not valid JSON",
        ),
        (
            Fault(after=1, delay=1.0),
            r"^inventory source 'servicenow': page 2 \(page=2\): GET .* did not complete: ",
        ),
    ],
)
def test_a_failure_mid_paging_fails_the_source_naming_the_page(cmdb, session, fault, message):
    cmdb.faults.add(fault)
    with pytest.raises(SourceError, match=message) as info:
        get(endpoint(cmdb, timeout=(2.0, 0.2)), session, STYLES["page"], source_name=SOURCE)
    assert TOKEN not in str(info.value)


def test_a_failure_on_a_cursor_page_names_the_cursor(cmdb, session):
    cmdb.faults.add(Fault(after=2, status=503))
    with pytest.raises(SourceError, match=r"page 3 \(cursor '[A-Za-z0-9=_-]+'\): .* answered 503"):
        get(endpoint(cmdb), session, STYLES["cursor-token"], source_name=SOURCE)


def test_refused_credentials_fail_the_source(cmdb, session):
    with pytest.raises(SourceError, match=r"page 1 .* answered 401: .*User Not Authenticated"):
        get(endpoint(cmdb, token="wrong"), session, STYLES["page"], source_name=SOURCE)
    with pytest.raises(SourceError, match="answered 401"):
        get(
            CmdbEndpoint(cmdb.url, "wrong", path=TABLE, username="svc"),
            session,
            PagingConfig(),
            source_name=SOURCE,
        )


def test_more_pages_than_allowed_is_a_clear_error(cmdb, session):
    paging = PagingConfig(page_size=1, max_pages=3)
    with pytest.raises(
        SourceError, match=r"more than 3 pages \(3 records so far\): raise paging\.max_pages"
    ):
        get(endpoint(cmdb), session, paging, source_name=SOURCE)
    assert len(cmdb.tables.queries) == 3


def test_paging_settings_that_do_not_match_the_api_fail_instead_of_syncing_part(cmdb, session):
    # The API pages from 1; a config that starts at 2 skips the first page, and the total says so.
    paging = PagingConfig(page_size=3, first_page=2, total_path="total")
    with pytest.raises(SourceError, match="announced 7 records but 4 were listed"):
        get(endpoint(cmdb), session, paging, source_name=SOURCE)


def test_an_unknown_table_fails_the_source(cmdb, session):
    missing = CmdbEndpoint(cmdb.url, TOKEN, path="/api/now/table/nope")
    with pytest.raises(SourceError, match=r"answered 404: .*Invalid table nope"):
        get(missing, session, PagingConfig(), source_name=SOURCE)
