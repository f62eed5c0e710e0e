"""The HTTP CMDB inventory source: field mapping, value maps, config, and the paging guards.

The guards (loops, limits, foreign next links, short listings) are driven by a scripted session,
so each misbehaviour is exact; the real stand-in API is exercised in the integration tests.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from pydantic import ValidationError

from autosec.domain.models import AssetKind, Criticality, Environment
from autosec.inventory.file import SourceError
from autosec.inventory.http_cmdb import (
    CmdbEndpoint,
    CmdbSourceConfig,
    FieldMapping,
    PagingConfig,
    RawRecord,
    endpoint_from_connection,
    get,
    resolve,
    transform,
)

SOURCE = "cmdb"

MAPPING = FieldMapping(
    id="sys_id",
    name="name",
    owner="support_group.name",
    addresses=["ip_address", "fqdn"],
    kind="sys_class_name",
    environment="environment",
    criticality="business_criticality",
    tags=["tags", "category"],
    kind_map={"cmdb_ci_linux_server": "host", "cmdb_ci_db_instance": "database"},
    environment_map={"Production": "production", "QA": "test"},
    criticality_map={"1 - most critical": "business_critical", "3 - less critical": "medium"},
)


def record(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sys_id": "a1",
        "name": "web-01",
        "sys_class_name": "cmdb_ci_linux_server",
        "ip_address": "10.0.0.5",
        "fqdn": "Web-01.Example.com",
        "environment": "Production",
        "business_criticality": "1 - most critical",
        "support_group": {"name": "Web Team", "value": "g1"},
        "tags": ["PCI", "external"],
        "category": "Linux",
    }
    base.update(overrides)
    return base


def run(*records: Any, mapping: FieldMapping = MAPPING):
    return transform(list(records), SOURCE, mapping)


def only_asset(batch):
    assert batch.rejects == [], [r.reason for r in batch.rejects]
    (asset,) = batch.assets
    return asset


# --- transform ---------------------------------------------------------------------------------


def test_a_record_is_mapped_through_paths_and_value_maps():
    asset = only_asset(run(record()))
    assert asset.id == "a1"
    assert asset.name == "web-01"
    assert asset.kind is AssetKind.HOST
    assert asset.source == SOURCE
    assert asset.owner == "Web Team"
    assert asset.environment is Environment.PRODUCTION
    assert asset.criticality is Criticality.BUSINESS_CRITICAL
    assert asset.addresses == ("10.0.0.5", "web-01.example.com")
    assert asset.tags == ("pci", "external", "linux")


def test_value_maps_match_exactly_then_ignoring_case_then_our_own_values():
    batch = run(
        record(sys_id="1", environment="qa", business_criticality="3 - LESS CRITICAL"),
        record(sys_id="2", environment="Staging", business_criticality="High"),
        record(sys_id="3", sys_class_name="cmdb_ci_db_instance"),
    )
    assert batch.rejects == []
    assert [(a.environment, a.criticality) for a in batch.assets[:2]] == [
        (Environment.TEST, Criticality.MEDIUM),
        (Environment.STAGING, Criticality.HIGH),
    ]
    assert batch.assets[2].kind is AssetKind.DATABASE


def test_an_unknown_value_is_rejected_and_points_at_the_map():
    batch = run(record(environment="Prod-EU"))
    (reject,) = batch.rejects
    assert (
        "field 'environment' (at 'environment'): unknown value 'Prod-EU': add it to "
        "environment_map or use one of production, staging, development, test"
    ) in reject.reason
    assert reject.asset_id == "a1"


def test_defaults_fill_missing_or_empty_values():
    mapping = MAPPING.model_copy(
        update={"default_environment": Environment.DEVELOPMENT, "default_kind": AssetKind.SERVICE}
    )
    batch = run(record(environment="", sys_class_name=None), mapping=mapping)
    asset = only_asset(batch)
    assert (asset.environment, asset.kind) == (Environment.DEVELOPMENT, AssetKind.SERVICE)


def test_a_missing_value_without_default_is_rejected():
    batch = run(record(environment=None))
    (reject,) = batch.rejects
    assert "field 'environment' (at 'environment'): missing, and no default is set" in reject.reason


def test_a_record_missing_the_id_is_rejected_with_its_page_and_item():
    rows = [
        RawRecord(1, 0, record(sys_id="a1")),
        RawRecord(1, 1, record(sys_id="a2")),
        RawRecord(2, 0, {k: v for k, v in record().items() if k != "sys_id"}),
        RawRecord(2, 1, record(sys_id="a3")),
    ]
    batch = transform(rows, SOURCE, MAPPING)
    assert [a.id for a in batch.assets] == ["a1", "a2", "a3"]
    (reject,) = batch.rejects
    assert reject.position == "cmdb page 2 item 0"
    assert (reject.file, reject.line, reject.index, reject.asset_id) == (
        "cmdb page 2",
        None,
        0,
        None,
    )
    assert reject.reason == "cmdb page 2 item 0: field 'id' (at 'sys_id'): missing"
    assert [(o.file, o.index) for o in batch.origins] == [
        ("cmdb page 1", 0),
        ("cmdb page 1", 1),
        ("cmdb page 2", 1),
    ]


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"sys_id": ""}, "field 'id' (at 'sys_id'): empty"),
        ({"sys_id": {"value": 1}}, "field 'id' (at 'sys_id'): expected text, found a dict"),
        ({"name": "  "}, "field 'name' (at 'name'): empty"),
        ({"name": "web\x00"}, "field 'name' (at 'name'): contains control characters"),
        ({"support_group": ""}, "field 'owner' (at 'support_group.name'): missing"),
        ({"ip_address": "10.0.0.1; rm -rf /"}, "invalid target '10.0.0.1; rm -rf /'"),
        ({"fqdn": ["ok.example.com", 7]}, "item 7 is a int, expected text"),
        ({"ip_address": {"v": 1}}, "expected text or a list, found a dict"),
        ({"tags": ["ok", "bad\n"]}, "field 'tags' (at 'tags'): item 'bad\\n' contains control"),
    ],
)
def test_bad_values_reject_the_record_and_name_the_field(overrides, problem):
    batch = run(record(**overrides))
    assert batch.assets == []
    (reject,) = batch.rejects
    assert problem in reject.reason
    assert reject.reason.startswith("cmdb item 0: ")


def test_an_empty_owner_is_left_for_the_quality_suite():
    assert only_asset(run(record(support_group={"name": ""}))).owner == ""


def test_addresses_split_on_commas_and_lists_are_flattened_and_deduplicated():
    asset = only_asset(
        run(record(ip_address="10.0.0.5, 10.0.0.6,,", fqdn=["web.example.com", "10.0.0.5"]))
    )
    assert asset.addresses == ("10.0.0.5", "10.0.0.6", "web.example.com")


def test_flat_dot_walked_keys_nested_objects_and_list_indexes_resolve():
    assert resolve({"support_group.name": "Flat"}, "support_group.name") == "Flat"
    assert resolve({"a": {"b.c": 1}}, "a.b.c") == 1
    assert resolve({"ips": [{"v": "x"}, {"v": "y"}]}, "ips.1.v") == "y"
    missing = resolve({}, "a")
    assert resolve({"ips": []}, "ips.0") is missing
    assert resolve({"a": "text"}, "a.b") is missing
    assert resolve({"a": None}, "a") is None
    asset = only_asset(run(record(**{"support_group": "", "support_group.name": "Dot Walked"})))
    assert asset.owner == "Dot Walked"


def test_the_id_prefix_and_duplicates():
    mapping = MAPPING.model_copy(update={"id_prefix": "snow:"})
    batch = run(record(sys_id="x"), record(sys_id="x", name="other"), mapping=mapping)
    assert [a.id for a in batch.assets] == ["snow:x"]
    (reject,) = batch.rejects
    assert "duplicate id 'snow:x', first at cmdb item 0" in reject.reason
    assert reject.asset_id == "snow:x"


def test_a_record_that_is_not_an_object_is_rejected_unidentified():
    batch = run(["a", "list"], record())
    (reject,) = batch.rejects
    assert reject.asset_id is None
    assert "a record must be a JSON object, found a list" in reject.reason
    assert len(batch.assets) == 1


def test_transform_is_pure():
    records = [record(), record(sys_id="b", environment="nope")]
    before = copy.deepcopy(records)
    assert run(*records) == run(*records)
    assert records == before


# --- config ------------------------------------------------------------------------------------


def test_a_config_as_the_estate_file_writes_it():
    config = CmdbSourceConfig.model_validate(
        {
            "name": "servicenow",
            "kind": "http_cmdb",
            "conn_id": "autosec_cmdb",
            "path": "/api/now/table/cmdb_ci_server",
            "params": {"sysparm_query": "operational_status=1"},
            "paging": {
                "style": "offset",
                "size_param": "sysparm_limit",
                "offset_param": "sysparm_offset",
            },
            "mapping": {
                "id": "sys_id",
                "name": "name",
                "owner": "support_group.name",
                "addresses": ["ip_address", "fqdn"],
                "environment": "environment",
                "environment_map": {"Production": "production"},
                "default_kind": "host",
                "default_criticality": "medium",
            },
        }
    )
    assert config.paging.style == "offset" and config.paging.records_path == "result"
    assert config.mapping.environment_map == {"Production": Environment.PRODUCTION}
    assert config.mapping.default_kind is AssetKind.HOST


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mapping": {"id": "a b", "name": "n", "owner": "o"}}, "is not a dotted field path"),
        (
            {"mapping": {"id": "i", "name": "n", "owner": "o", "default_kind": "host"}},
            "environment",
        ),
        ({"path": "api/now"}, "must start with '/'"),
        ({"path": "/api?x=1"}, "must start with '/'"),
        ({"paging": {"style": "scroll"}}, "style"),
        ({"paging": {"page_param": "p&x"}}, "outside"),
        ({"paging": {"max_pages": 0}}, "max_pages"),
        ({"params": {"a&b": "1"}}, "outside"),
        ({"extra": 1}, "extra"),
        ({"mapping": {"id": "i", "name": "n", "owner": "o", "colour": "c"}}, "colour"),
        (
            {"mapping": {"id": "i", "name": "n", "owner": "o", "environment_map": {"P": "prod"}}},
            "prod",
        ),
    ],
)
def test_config_mistakes_are_named(change, message):
    data: dict[str, Any] = {
        "name": "cmdb",
        "kind": "http_cmdb",
        "conn_id": "c",
        "mapping": {
            "id": "i",
            "name": "n",
            "owner": "o",
            "default_kind": "host",
            "default_environment": "test",
            "default_criticality": "low",
        },
    }
    data.update(change)
    with pytest.raises(ValidationError, match=message):
        CmdbSourceConfig.model_validate(data)


def test_endpoint_from_a_connection_bearer_or_basic():
    bearer = CmdbEndpoint.from_connection(
        SimpleNamespace(host="https://cmdb.example.com/base", port=None, schema="v1", password="t"),
        path="/cis",
    )
    assert bearer.collection_url() == "https://cmdb.example.com/base/v1/cis"
    assert bearer.headers()["Authorization"] == "Bearer t"
    connection = SimpleNamespace(
        host="cmdb.example.com", port=8443, login="svc", password="pw", extra=None
    )
    basic = endpoint_from_connection(connection)
    assert basic == CmdbEndpoint.from_connection(connection)
    assert basic.path == "/"
    expected = "Basic " + base64.b64encode(b"svc:pw").decode()
    assert basic.headers()["Authorization"] == expected
    assert basic.base_url == "https://cmdb.example.com:8443"
    assert "pw" not in repr(basic)
    with pytest.raises(ValueError, match="no host"):
        CmdbEndpoint.from_connection(SimpleNamespace(host=None))
    with pytest.raises(ValueError, match="must start with '/'"):
        CmdbEndpoint("https://cmdb.example.com", path="//evil.example.com/x")


# --- get, with a scripted session --------------------------------------------------------------


class Answer:
    """A minimal streamed response."""

    def __init__(self, body: Any, status: int = 200) -> None:
        self.status_code = status
        self._data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"Content-Length": str(len(self._data))}
        self.closed = False

    def iter_content(self, chunk_size: int) -> Iterator[bytes]:
        for start in range(0, len(self._data), chunk_size):
            yield self._data[start : start + chunk_size]

    def close(self) -> None:
        self.closed = True


class Script:
    """A session that answers requests in order and records what was asked."""

    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, Any, dict[str, str]]] = []

    def get(self, url: str, *, params: Any, headers: dict[str, str], timeout: Any, stream: bool):
        assert stream is True and timeout == (5.0, 30.0)
        self.calls.append((url, params, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


ENDPOINT = CmdbEndpoint("https://cmdb.example.com", token="s3cret", path="/api/cis")


def test_page_style_stops_at_an_empty_page_and_numbers_pages():
    session = Script(
        Answer({"result": [{"id": 1}, {"id": 2}]}),
        Answer({"result": [{"id": 3}]}),
        Answer({"result": []}),
    )
    rows = get(ENDPOINT, session, PagingConfig(page_size=2), source_name=SOURCE, params={"q": "x"})
    assert [(r.page, r.index, r.data["id"]) for r in rows] == [(1, 0, 1), (1, 1, 2), (2, 0, 3)]
    assert [c[1] for c in session.calls] == [
        {"q": "x", "page": 1, "per_page": 2},
        {"q": "x", "page": 2, "per_page": 2},
        {"q": "x", "page": 3, "per_page": 2},
    ]
    assert session.calls[0][0] == "https://cmdb.example.com/api/cis"
    assert session.calls[0][2]["Authorization"] == "Bearer s3cret"


def test_page_style_stops_at_the_total_without_asking_for_an_empty_page():
    session = Script(
        Answer({"data": {"items": [1, 2]}, "meta": {"count": "3"}}),
        Answer({"data": {"items": [3]}, "meta": {"count": 3}}),
    )
    paging = PagingConfig(page_size=2, records_path="data.items", total_path="meta.count")
    assert [r.data for r in get(ENDPOINT, session, paging, source_name=SOURCE)] == [1, 2, 3]
    assert len(session.calls) == 2


def test_offset_style_counts_what_was_read():
    session = Script(Answer([1, 2, 3]), Answer([4]), Answer([]))
    paging = PagingConfig(style="offset", records_path="", page_size=3, offset_param="skip")
    assert len(get(ENDPOINT, session, paging, source_name=SOURCE)) == 4
    assert [c[1]["skip"] for c in session.calls] == [0, 3, 4]


def test_a_short_listing_against_the_announced_total_fails():
    session = Script(Answer({"result": [1], "total": 5}), Answer({"result": [], "total": 5}))
    paging = PagingConfig(total_path="total")
    with pytest.raises(SourceError, match=r"announced 5 records but 1 were listed over 2 pages"):
        get(ENDPOINT, session, paging, source_name=SOURCE)


def test_a_cursor_that_repeats_is_a_loop():
    session = Script(
        Answer({"result": [1], "next": "c1"}),
        Answer({"result": [2], "next": "c2"}),
        Answer({"result": [3], "next": "c1"}),
    )
    with pytest.raises(SourceError) as info:
        get(ENDPOINT, session, PagingConfig(style="cursor"), source_name=SOURCE)
    assert "inventory source 'cmdb': page 3 (cursor 'c2'): the next cursor 'c1'" in str(info.value)
    assert "paging in a loop" in str(info.value)
    assert [c[1].get("cursor") for c in session.calls] == [None, "c1", "c2"]


def test_a_next_link_is_followed_on_the_same_origin_only():
    session = Script(
        Answer({"result": [1], "links": {"next": "/api/cis?after=1"}}),
        Answer({"result": [2], "links": {"next": "https://evil.example.net/steal"}}),
    )
    paging = PagingConfig(style="cursor", next_path="links.next", next_kind="url")
    with pytest.raises(SourceError, match=r"leaves https://cmdb.example.com: not followed"):
        get(ENDPOINT, session, paging, source_name=SOURCE)
    assert session.calls[1][0] == "https://cmdb.example.com/api/cis?after=1"
    assert session.calls[1][1] is None
    assert len(session.calls) == 2


def test_max_pages_and_max_records_bound_the_listing():
    endless = Script(*(Answer({"result": [i], "next": f"c{i}"}) for i in range(5)))
    with pytest.raises(SourceError, match=r"more than 3 pages \(3 records so far\)"):
        get(ENDPOINT, endless, PagingConfig(style="cursor", max_pages=3), source_name=SOURCE)
    big = Script(Answer({"result": list(range(10))}))
    with pytest.raises(SourceError, match=r"more than 9 records: raise paging\.max_records"):
        get(ENDPOINT, big, PagingConfig(max_records=9), source_name=SOURCE)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            Answer({"error": "boom"}, status=500),
            r"page 1 \(page=1\): GET https://cmdb.example.com/api/cis answered 500: \{\"error\"",
        ),
        (Answer(b'{"result": [1,'), r"page 1 \(page=1\): GET .* the answer is not valid JSON"),
        (Answer({"result": {"a": 1}}), r"expected a list of records at 'result', found a dict"),
        (Answer({"rows": []}), r"expected a list of records at 'result', found nothing"),
        (Answer(b'{"result": ["\xc3\x28"]}'), "the answer is not UTF-8 text"),
        (requests.ReadTimeout("read timed out"), r"did not complete: ReadTimeout: read timed out"),
        (requests.ConnectionError("refused"), r"did not complete: ConnectionError: refused"),
    ],
)
def test_failures_name_the_source_and_page_and_never_the_token(answer, message):
    with pytest.raises(SourceError, match=message) as info:
        get(ENDPOINT, Script(answer), PagingConfig(), source_name="servicenow")
    assert str(info.value).startswith("inventory source 'servicenow': page 1")
    assert "s3cret" not in str(info.value)


def test_an_answer_over_the_byte_limit_is_refused():
    declared = Answer({"result": ["x" * 5000]})
    with pytest.raises(SourceError, match=r"the answer is 5016 bytes, over the 1024 limit"):
        get(ENDPOINT, Script(declared), PagingConfig(max_page_bytes=1024), source_name=SOURCE)
    assert declared.closed
    streamed = Answer({"result": ["x" * 5000]})
    streamed.headers = {}
    with pytest.raises(SourceError, match=r"the answer is over the 1024 byte limit"):
        get(ENDPOINT, Script(streamed), PagingConfig(max_page_bytes=1024), source_name=SOURCE)
    assert streamed.closed
