"""The Backstage source over real HTTP: the real catalog files of the shared corpus, served by the
stand-in catalog with cursor paging, kind filters and token auth."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autosec.demo.backstage import BackstageCatalogServer, Fault
from autosec.domain.models import AssetKind, Environment
from autosec.inventory.backstage import (
    ASSET_KINDS,
    OWNER_KINDS,
    BackstageEndpoint,
    BackstageSourceConfig,
    collect,
    get,
    transform,
)
from autosec.inventory.file import SourceError
from autosec.inventory.registry import get_source

TOKEN = "backstage-s3cret"
SOURCE = "catalog"


@pytest.fixture
def entities_dir(corpus: Path) -> Path:
    folder = corpus / "backstage"
    if not folder.is_dir():
        pytest.skip(f"Backstage corpus not found at {folder}")
    return folder


@pytest.fixture
def catalog(entities_dir: Path) -> Iterator[BackstageCatalogServer]:
    with BackstageCatalogServer(entities_dir, token=TOKEN) as server:
        yield server


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def endpoint(server: BackstageCatalogServer, token: str | None = TOKEN, **kw: Any):
    return BackstageEndpoint(server.url, token, **kw)


def corpus_entities(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The entity documents as the files hold them, read independently of the stand-in."""
    found = []
    for path in sorted(folder.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(document, dict):
                found.append((path, document))
    return found


def ref(document: dict[str, Any]) -> str:
    metadata = document["metadata"]
    namespace = metadata.get("namespace", "default")
    return f"{document['kind']}:{namespace}/{metadata['name']}".lower()


def test_every_valid_entity_becomes_an_asset_or_an_owner(catalog, session, entities_dir):
    batch = transform(get(endpoint(catalog), session, source_name=SOURCE), SOURCE)

    wanted = [
        (path, doc)
        for path, doc in corpus_entities(entities_dir)
        if doc["kind"].lower() in (*ASSET_KINDS, *OWNER_KINDS)
    ]
    valid = {ref(doc) for path, doc in wanted if path.name != "invalid-component.yaml"}
    assert {a.id for a in batch.assets} | set(batch.owners) == valid
    assert len(batch.assets) + len(batch.owners) == len(valid) == len(wanted) - 1
    assert set(batch.owners) == {
        "group:default/acme-corp",
        "group:default/infrastructure",
        "group:default/janus-authors",
        "group:default/rhdh-team",
    }
    assert batch.ignored == []  # the kind filter kept APIs, Domains and Locations out
    assert len(batch.origins) == len(batch.assets)

    by_id = {a.id: a for a in batch.assets}
    showcase = by_id["component:default/backstage-showcase"]
    assert (showcase.kind, showcase.environment) == (AssetKind.WEB_APP, Environment.PRODUCTION)
    assert showcase.owner == "group:default/janus-authors"
    assert showcase.addresses == ()  # links and source annotations are not scan targets
    assert by_id["resource:default/pgdb"].kind is AssetKind.DATABASE
    assert by_id["component:default/backstage-existing"].kind is AssetKind.REPOSITORY
    assert by_id["component:default/artist-lookup"].environment is Environment.DEVELOPMENT
    assert by_id["component:default/artist-lookup"].tags == ("java", "data")
    other_namespace = by_id["component:alternative/different-namespace"]
    assert other_namespace.owner == "group:default/team-a"
    # The System and the Component both named rhdh are two assets.
    assert {"system:default/rhdh", "component:default/rhdh"} <= set(by_id)
    assert by_id["component:default/rhdh"].owner == "group:default/rhdh-team"


def test_the_invalid_entity_is_rejected_and_reported(catalog, session):
    batch = transform(get(endpoint(catalog), session, page_size=5, source_name=SOURCE), SOURCE)
    (reject,) = batch.rejects
    assert reject.asset_id == "component:default/invalid component"
    assert reject.raw["metadata"]["name"] == "invalid component"
    assert reject.file.startswith(f"{SOURCE} page ") and reject.line is None
    assert reject.reason.startswith(f"{reject.position} (component:default/invalid component): ")
    assert "metadata.name 'invalid component' is not a valid name" in reject.reason
    assert "metadata.tags: 'go 1.15.3' is not a valid tag" in reject.reason


def test_dangling_references_are_flagged_and_the_assets_kept(catalog, session):
    batch = transform(get(endpoint(catalog), session, source_name=SOURCE), SOURCE)
    owners = {
        w.asset_id: w.reason.split(" is not a Group or User")[0].rsplit("(", 1)[-1].rstrip(")")
        for w in batch.warnings
        if "is not a Group or User in the catalog" in w.reason
    }
    assert owners == {
        "component:default/backstage-existing": "group:default/cncf",
        "component:default/artist-lookup": "group:default/team-a",
        "component:alternative/different-namespace": "group:default/team-a",
        "component:default/petstore": "group:default/sre",
        "component:default/wayback-archive": "group:default/team-a",
        "resource:default/artists-db": "group:default/team-a",
        "system:default/audio-playback": "group:default/team-c",
    }
    systems = sorted(w.asset_id for w in batch.warnings if "is not a System" in w.reason)
    assert systems == ["component:default/artist-lookup", "resource:default/artists-db"]
    assert set(owners) | set(systems) <= {a.id for a in batch.assets}
    assert all(w.reason.startswith(f"{w.position} ({w.asset_id}): ") for w in batch.warnings)


def test_small_pages_give_the_same_result_as_one_page(catalog, session):
    whole = transform(get(endpoint(catalog), session, page_size=1000, source_name=SOURCE), SOURCE)
    assert len(catalog.catalog.queries) == 1

    for size in (1, 4):
        before = len(catalog.catalog.queries)
        raw = get(endpoint(catalog), session, page_size=size, source_name=SOURCE)
        paged = transform(raw, SOURCE)
        assert paged.assets == whole.assets
        assert paged.owners == whole.owners
        assert [r.asset_id for r in paged.rejects] == [r.asset_id for r in whole.rejects]
        assert [w.asset_id for w in paged.warnings] == [w.asset_id for w in whole.warnings]
        queries = catalog.catalog.queries[before:]
        assert len(queries) == math.ceil(len(raw) / size)
        assert max(r.page for r in raw) == len(queries)
        # Backstage's cursor carries the filter: only the first request sends it.
        assert "filter" in queries[0] and "cursor" not in queries[0]
        assert all("cursor" in q and "filter" not in q for q in queries[1:])
        assert {q["limit"][0] for q in queries} == {str(size)}


def test_a_kind_filter_selects_only_those_kinds(catalog, session):
    batch = transform(get(endpoint(catalog), session, ["kind=group"], source_name=SOURCE), SOURCE)
    assert batch.assets == [] and batch.rejects == []
    assert len(batch.owners) == 4
    typed = get(
        endpoint(catalog), session, ["kind=resource,spec.type=database"], source_name=SOURCE
    )
    assert sorted(e.entity["metadata"]["name"] for e in typed) == ["artists-db", "pgdb"]


def test_a_500_mid_paging_fails_the_source_and_returns_nothing(catalog, session):
    catalog.faults.add(Fault(after=2, status=500))
    with pytest.raises(SourceError) as info:
        collect(
            BackstageSourceConfig(name=SOURCE, kind="backstage", page_size=3),
            endpoint(catalog),
            session,
        )
    message = str(info.value)
    assert message.startswith(f"inventory source {SOURCE!r}: page 3 (cursor '")
    assert "/api/catalog/entities/by-query answered 500" in message
    assert "injected fault" in message
    assert TOKEN not in message


def test_a_timeout_fails_the_source_naming_the_page(catalog, session):
    catalog.faults.add(Fault(after=1, delay=1.0))
    with pytest.raises(SourceError, match=r"page 2 \(cursor '.*'\): GET .* did not complete: "):
        get(endpoint(catalog, timeout=(2.0, 0.2)), session, page_size=5, source_name=SOURCE)


def test_malformed_json_fails_the_source(catalog, session):
    catalog.faults.add(Fault(body=b'{"items": [{"kind": "Component"'))
    with pytest.raises(SourceError, match=r"page 1 \(cursor none\): .* is not valid JSON"):
        get(endpoint(catalog), session, source_name=SOURCE)


def test_a_wrong_token_fails_the_source(catalog, session):
    with pytest.raises(SourceError, match=r"answered 401: .*AuthenticationError") as info:
        get(endpoint(catalog, token="wrong-token"), session, source_name=SOURCE)
    assert "wrong-token" not in str(info.value)


def test_invalid_entities_in_a_served_folder_are_located_by_page_and_item(tmp_path, session):
    (tmp_path / "team.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata: {name: a-team}\n"
        "spec: {type: team, children: []}\n"
    )
    (tmp_path / "components.yaml").write_text(
        "\n---\n".join(
            [
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: a-good}\n"
                "spec: {type: service, lifecycle: production, owner: a-team}",
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {name: b-nospec}",
                "apiVersion: example.com/v9\nkind: Component\nmetadata: {name: c-version}\n"
                "spec: {type: service, lifecycle: production, owner: a-team}",
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata: {title: no name}\n"
                "spec: {type: service, lifecycle: production, owner: a-team}",
                "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: d-good\n"
                "  annotations: {autosec.io/addresses: '10.1.2.3, d.example.com'}\n"
                "spec: {type: website, lifecycle: experimental, owner: group:a-team}",
            ]
        )
    )
    with BackstageCatalogServer(tmp_path) as server:
        batch = transform(get(BackstageEndpoint(server.url), session, page_size=2), "bs")
    # Served in ref order; the unnamed one sorts first.
    assert [r.position for r in batch.rejects] == [
        "bs page 1 item 0",
        "bs page 2 item 0",
        "bs page 2 item 1",
    ]
    assert [r.asset_id for r in batch.rejects] == [
        None,
        "component:default/b-nospec",
        "component:default/c-version",
    ]
    assert "metadata.name missing" in batch.rejects[0].reason
    assert "spec missing" in batch.rejects[1].reason
    assert "apiVersion 'example.com/v9' is not one of" in batch.rejects[2].reason
    assert [(a.id, a.addresses) for a in batch.assets] == [
        ("component:default/a-good", ()),
        ("component:default/d-good", ("10.1.2.3", "d.example.com")),
    ]
    assert batch.warnings == []


def test_the_registry_and_collect_run_the_whole_source(catalog, session):
    module = get_source("backstage")
    config = BackstageSourceConfig(name=SOURCE, kind="backstage", page_size=7)
    batch = module.collect(config, endpoint(catalog), session)
    assert len(batch.assets) == 13 and len(batch.rejects) == 1
    assert {a.source for a in batch.assets} == {SOURCE}


def test_the_stand_in_refuses_bad_requests_like_backstage(catalog, session):
    url = f"{catalog.url}/api/catalog/entities/by-query"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert session.get(f"{catalog.url}/healthz", timeout=5).status_code == 200
    unauthorised = session.get(url, timeout=5)
    assert unauthorised.status_code == 401
    assert unauthorised.json()["error"]["name"] == "AuthenticationError"
    bad_cursor = session.get(url, params={"cursor": "not-a-cursor"}, headers=auth, timeout=5)
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["error"]["name"] == "InputError"
    assert session.get(url, params={"limit": "0"}, headers=auth, timeout=5).status_code == 400
    first = session.get(url, params={"limit": 2, "filter": "kind=system"}, headers=auth, timeout=5)
    body = first.json()
    assert body["totalItems"] == 3 and len(body["items"]) == 2
    assert all(item["metadata"]["uid"] for item in body["items"])
    # A filter sent with a cursor is ignored: the cursor carries the first one.
    second = session.get(
        url,
        params={"limit": 2, "cursor": body["pageInfo"]["nextCursor"], "filter": "kind=group"},
        headers=auth,
        timeout=5,
    ).json()
    assert [i["kind"] for i in second["items"]] == ["System"]
    assert "nextCursor" not in second["pageInfo"] and "prevCursor" in second["pageInfo"]
