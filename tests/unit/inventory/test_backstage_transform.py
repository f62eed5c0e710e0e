"""The Backstage inventory source's pure parts: entity checks, mapping tables, owners, config."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from autosec.domain.models import AssetKind, Criticality, Environment
from autosec.inventory.backstage import (
    DEFAULT_FILTERS,
    BackstageEndpoint,
    BackstageSourceConfig,
    CatalogBatch,
    EntityWarning,
    RawEntity,
    check_filter,
    endpoint_from_connection,
    parse_ref,
    transform,
)

SOURCE = "catalog"


def entity(
    kind: str,
    name: str,
    *,
    namespace: str | None = None,
    annotations: dict[str, Any] | None = None,
    tags: list[Any] | None = None,
    api_version: str = "backstage.io/v1alpha1",
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    if annotations is not None:
        metadata["annotations"] = annotations
    if tags is not None:
        metadata["tags"] = tags
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def component(name: str = "shop", **overrides: Any) -> dict[str, Any]:
    spec = {"type": "service", "lifecycle": "production", "owner": "team-a", **overrides}
    return entity("Component", name, **spec)


def team(name: str = "team-a", namespace: str | None = None, **metadata: Any) -> dict[str, Any]:
    group = entity("Group", name, namespace=namespace, type="team", children=[])
    group["metadata"].update(metadata)
    return group


def run(*entities: Any, **kwargs: Any) -> CatalogBatch:
    return transform(list(entities), SOURCE, **kwargs)


def only_asset(batch: CatalogBatch):
    assert batch.rejects == [], [r.reason for r in batch.rejects]
    (asset,) = batch.assets
    return asset


# --- the asset ---------------------------------------------------------------------------------


def test_a_component_becomes_an_asset_with_a_lowercased_ref_as_id():
    batch = run(
        team(),
        component(
            "Shop-Frontend",
            annotations={
                "autosec.io/addresses": " 10.0.0.1, App.Example.com ,,https://shop.example.com/"
            },
            tags=["java", "pci"],
        ),
    )
    asset = only_asset(batch)
    assert asset.id == "component:default/shop-frontend"
    assert asset.name == "Shop-Frontend"
    assert asset.kind is AssetKind.SERVICE
    assert asset.source == SOURCE
    assert asset.owner == "group:default/team-a"
    assert asset.environment is Environment.PRODUCTION
    assert asset.criticality is Criticality.MEDIUM
    assert asset.addresses == ("10.0.0.1", "app.example.com", "https://shop.example.com/")
    assert asset.tags == ("java", "pci")
    assert batch.warnings == []
    assert [(o.file, o.index) for o in batch.origins] == [(SOURCE, 1)]


@pytest.mark.parametrize(
    ("kind", "spec_type", "expected"),
    [
        ("Component", "service", AssetKind.SERVICE),
        ("Component", "website", AssetKind.WEB_APP),
        ("Component", "library", AssetKind.REPOSITORY),
        ("Component", "product", AssetKind.SERVICE),
        ("Resource", "database", AssetKind.DATABASE),
        ("Resource", "vm", AssetKind.HOST),
        ("Resource", "aws-account", AssetKind.CLOUD_ACCOUNT),
        ("Resource", "identity-provider", AssetKind.SERVICE),
        ("System", None, AssetKind.SERVICE),
    ],
)
def test_kind_and_type_map_to_an_asset_kind(kind, spec_type, expected):
    spec: dict[str, Any] = {"owner": "team-a"}
    if spec_type is not None:
        spec["type"] = spec_type
    if kind == "Component":
        spec["lifecycle"] = "production"
    asset = only_asset(run(team(), entity(kind, "thing", **spec)))
    assert asset.kind is expected
    assert asset.id == f"{kind.lower()}:default/thing"


def test_the_asset_kind_annotation_overrides_the_derived_kind():
    asset = only_asset(run(team(), component(annotations={"autosec.io/asset-kind": "Web-App"})))
    assert asset.kind is AssetKind.WEB_APP


@pytest.mark.parametrize(
    ("lifecycle", "expected"),
    [
        ("production", Environment.PRODUCTION),
        ("experimental", Environment.DEVELOPMENT),
        ("deprecated", Environment.PRODUCTION),
        ("Staging", Environment.STAGING),
        ("dev", Environment.DEVELOPMENT),
        ("test", Environment.TEST),
    ],
)
def test_lifecycle_maps_to_an_environment(lifecycle, expected):
    batch = run(team(), component(lifecycle=lifecycle))
    assert only_asset(batch).environment is expected
    assert batch.warnings == []


def test_an_unknown_lifecycle_takes_the_default_and_is_flagged():
    batch = run(team(), component(lifecycle="beta"), default_environment=Environment.STAGING)
    assert only_asset(batch).environment is Environment.STAGING
    (warning,) = batch.warnings
    assert "lifecycle 'beta'" in warning.reason and "staging assumed" in warning.reason


def test_a_resource_without_lifecycle_takes_the_default_silently():
    resource = entity("Resource", "db", type="database", owner="team-a")
    batch = run(team(), resource)
    assert only_asset(batch).environment is Environment.PRODUCTION
    assert batch.warnings == []


def test_the_environment_annotation_wins_over_the_lifecycle():
    batch = run(team(), component(annotations={"autosec.io/environment": "test"}))
    assert only_asset(batch).environment is Environment.TEST


def test_criticality_from_annotation_then_tags_then_default():
    annotated = component(
        "a", annotations={"autosec.io/criticality": "business-critical"}, tags=["criticality:low"]
    )
    tagged = component("b", tags=["criticality:low", "criticality:high", "java"])
    plain = component("c")
    batch = run(team(), annotated, tagged, plain, default_criticality=Criticality.LOW)
    assert batch.rejects == []
    assert [a.criticality for a in batch.assets] == [
        Criticality.BUSINESS_CRITICAL,
        Criticality.HIGH,  # the highest tag wins
        Criticality.LOW,
    ]


@pytest.mark.parametrize(
    ("annotations", "tags", "expected"),
    [
        (
            {"autosec.io/criticality": "urgent"},
            None,
            "autosec.io/criticality: unknown value 'urgent'",
        ),
        ({"autosec.io/environment": "prod"}, None, "autosec.io/environment: unknown value 'prod'"),
        ({"autosec.io/asset-kind": "vm"}, None, "autosec.io/asset-kind: unknown value 'vm'"),
        (None, ["criticality:extreme"], "tag 'criticality:extreme': unknown value 'extreme'"),
    ],
)
def test_an_unknown_autosec_value_rejects_the_entity(annotations, tags, expected):
    batch = run(team(), component(annotations=annotations, tags=tags))
    assert batch.assets == []
    (reject,) = batch.rejects
    assert expected in reject.reason
    assert reject.asset_id == "component:default/shop"


@pytest.mark.parametrize("hostile", ["10.0.0.1; rm -rf /", "$(id)", "--script=evil", "a b"])
def test_a_hostile_address_rejects_the_entity_and_names_the_value(hostile):
    batch = run(team(), component(annotations={"autosec.io/addresses": f"10.0.0.2,{hostile}"}))
    assert batch.assets == []
    (reject,) = batch.rejects
    assert f"annotation autosec.io/addresses: invalid target {hostile!r}" in reject.reason


def test_links_and_other_annotations_are_never_addresses():
    shop = component(
        annotations={
            "backstage.io/source-location": "url:https://github.com/acme/shop",
            "lighthouse.com/website-url": "https://shop.example.com",
            "github.com/project-slug": "acme/shop",
        }
    )
    shop["metadata"]["links"] = [{"url": "https://shop.example.com/docs", "title": "Docs"}]
    assert only_asset(run(team(), shop)).addresses == ()


# --- owners ------------------------------------------------------------------------------------


def test_owner_refs_resolve_to_groups_and_users_with_backstage_defaults():
    jdoe = entity("User", "jdoe", profile={"displayName": "J. Doe", "email": "jdoe@example.com"})
    platform = team("platform", namespace="ops", title="Platform team")
    batch = run(
        team(),
        jdoe,
        platform,
        component("a", owner="group:default/team-a"),
        component("b", owner="Team-A"),
        component("c", owner="user:jdoe"),
        component("d", owner="ops/platform"),
        entity(
            "Component",
            "e",
            namespace="ops",
            type="service",
            lifecycle="production",
            owner="platform",
        ),
    )
    assert batch.rejects == [] and batch.warnings == []
    assert [a.owner for a in batch.assets] == [
        "group:default/team-a",
        "group:default/team-a",
        "user:default/jdoe",
        "group:ops/platform",
        "group:ops/platform",  # the default namespace is the entity's own
    ]
    assert set(batch.owners) == {"group:default/team-a", "user:default/jdoe", "group:ops/platform"}
    assert batch.owners["user:default/jdoe"].email == "jdoe@example.com"
    assert batch.owners["user:default/jdoe"].title == "J. Doe"
    assert batch.owners["group:ops/platform"].title == "Platform team"


def test_a_dangling_owner_is_flagged_and_the_asset_is_still_synced():
    batch = run(team(), component("shop", owner="sre"))
    asset = only_asset(batch)
    assert asset.owner == "group:default/sre"
    (warning,) = batch.warnings
    assert isinstance(warning, EntityWarning)
    assert warning.asset_id == "component:default/shop"
    assert warning.position == f"{SOURCE} item 1"
    assert "owner 'sre' (group:default/sre) is not a Group or User in the catalog" in warning.reason
    assert batch.rejects == []


def test_an_owner_that_is_not_a_group_or_user_is_flagged():
    batch = run(team(), component("api"), component("shop", owner="component:api"))
    assert [a.owner for a in batch.assets] == ["group:default/team-a", "component:default/api"]
    (warning,) = batch.warnings
    assert "is a component, not a Group or User" in warning.reason


def test_an_invalid_owner_group_does_not_resolve_owners():
    broken = team("team-a")
    del broken["spec"]["type"]
    batch = run(broken, component())
    assert batch.owners == {}
    assert [r.asset_id for r in batch.rejects] == ["group:default/team-a"]
    assert "spec.type missing" in batch.rejects[0].reason
    assert only_asset_ignoring_rejects(batch).owner == "group:default/team-a"
    assert len(batch.warnings) == 1


def only_asset_ignoring_rejects(batch: CatalogBatch):
    (asset,) = batch.assets
    return asset


def test_a_dangling_system_is_flagged_and_a_known_one_is_not():
    system = entity("System", "shop-system", owner="team-a")
    batch = run(
        team(),
        system,
        component("a", system="shop-system"),
        component("b", system="missing-system"),
    )
    assert len(batch.assets) == 3
    (warning,) = batch.warnings
    assert warning.asset_id == "component:default/b"
    assert "system 'missing-system' (system:default/missing-system)" in warning.reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("team-a", "group:ns/team-a"),
        ("default/team-a", "group:default/team-a"),
        ("group:team-a", "group:ns/team-a"),
        ("User:Other/JDoe", "user:other/jdoe"),
    ],
)
def test_parse_ref_applies_the_defaults(value, expected):
    assert parse_ref(value, "group", "ns") == expected


@pytest.mark.parametrize("value", ["", "group:", "a:b:c", "a/b/c", "group:/x", ":x"])
def test_parse_ref_refuses_what_is_not_a_ref(value):
    with pytest.raises(ValueError, match="is not an entity ref"):
        parse_ref(value, "group", "default")


def test_an_unparsable_owner_rejects_the_entity():
    batch = run(team(), component(owner="a:b:c"))
    (reject,) = batch.rejects
    assert "spec.owner 'a:b:c' is not an entity ref" in reject.reason
    assert batch.assets == []


# --- invalid entities --------------------------------------------------------------------------


def _broken(change) -> dict[str, Any]:
    broken = component("broken")
    change(broken)
    return broken


@pytest.mark.parametrize(
    ("change", "ref", "problem"),
    [
        (lambda e: e["metadata"].pop("name"), None, "metadata.name missing"),
        (
            lambda e: e.update(apiVersion="v1"),
            "component:default/broken",
            "apiVersion 'v1' is not one of backstage.io/v1alpha1, backstage.io/v1beta1",
        ),
        (lambda e: e.pop("apiVersion"), "component:default/broken", "apiVersion missing"),
        (lambda e: e.pop("spec"), "component:default/broken", "spec missing"),
        (lambda e: e.update(spec="service"), "component:default/broken", "spec is not an object"),
        (lambda e: e.pop("metadata"), None, "metadata missing"),
        (lambda e: e["spec"].pop("owner"), "component:default/broken", "spec.owner missing"),
        (
            lambda e: e["spec"].pop("lifecycle"),
            "component:default/broken",
            "spec.lifecycle missing",
        ),
        (
            lambda e: e["metadata"].update(name="has space"),
            "component:default/has space",
            "metadata.name 'has space' is not a valid name",
        ),
        (
            lambda e: e["metadata"].update(namespace="Upper"),
            "component:upper/broken",
            "metadata.namespace 'Upper' is not a valid namespace",
        ),
        (
            lambda e: e["metadata"].update(tags=["Java"]),
            "component:default/broken",
            "metadata.tags: 'Java' is not a valid tag",
        ),
        (
            lambda e: e["metadata"].update(annotations={"x.io/n": 3}),
            "component:default/broken",
            "metadata.annotations['x.io/n'] is a int, not text",
        ),
        (lambda e: e.update(kind=""), None, "kind missing"),
    ],
)
def test_an_invalid_entity_is_rejected_with_its_ref_and_position(change, ref, problem):
    good_before, good_after = component("before"), component("after")
    raw = [
        RawEntity(1, 0, team()),
        RawEntity(1, 1, good_before),
        RawEntity(2, 0, _broken(change)),
        RawEntity(2, 1, good_after),
    ]
    batch = transform(raw, SOURCE)
    assert [a.id for a in batch.assets] == ["component:default/before", "component:default/after"]
    (reject,) = batch.rejects
    assert reject.position == f"{SOURCE} page 2 item 0"
    assert (reject.file, reject.line, reject.index) == (f"{SOURCE} page 2", None, 0)
    assert reject.asset_id == ref
    assert problem in reject.reason
    assert reject.reason.startswith(f"{SOURCE} page 2 item 0 ({ref or 'unidentified entity'}): ")
    assert [(o.file, o.index) for o in batch.origins] == [
        (f"{SOURCE} page 1", 1),
        (f"{SOURCE} page 2", 1),
    ]


def test_an_entity_that_is_not_an_object_is_rejected_unidentified():
    batch = run(["not", "an", "entity"], team())
    (reject,) = batch.rejects
    assert reject.asset_id is None
    assert "an entity must be an object, found a list" in reject.reason
    assert list(batch.owners) == ["group:default/team-a"]


def test_a_duplicate_ref_is_rejected_and_the_first_kept():
    batch = run(team(), component("shop"), component("SHOP", lifecycle="experimental"))
    assert [a.environment for a in batch.assets] == [Environment.PRODUCTION]
    (reject,) = batch.rejects
    assert "duplicate entity component:default/shop, first at catalog item 1" in reject.reason


def test_same_name_in_different_kinds_are_different_assets():
    system = entity("System", "rhdh", owner="team-a")
    batch = run(team(), system, component("rhdh", system="rhdh"))
    assert [a.id for a in batch.assets] == ["system:default/rhdh", "component:default/rhdh"]
    assert batch.warnings == [] and batch.rejects == []


def test_other_kinds_are_ignored_but_listed():
    api = entity("API", "petstore", type="openapi", lifecycle="production", owner="team-a")
    location = entity("Location", "all", targets=["./a.yaml"])
    batch = run(team(), api, location, component(), copy.deepcopy(api))
    assert batch.ignored == ["api:default/petstore", "location:default/all", "api:default/petstore"]
    assert len(batch.assets) == 1 and batch.rejects == []


def test_transform_is_pure_and_deterministic():
    entities = [team(), component("a", owner="ghost"), component("b space")]
    before = copy.deepcopy(entities)
    first, second = run(*entities), run(*entities)
    assert entities == before
    assert first == second


def test_an_empty_source_name_is_refused():
    with pytest.raises(ValueError, match="source name"):
        transform([component()], " ")


# --- config and endpoint -----------------------------------------------------------------------


def test_the_config_defaults_and_forbids_unknown_keys():
    config = BackstageSourceConfig(name="catalog", kind="backstage")
    assert config.filters == list(DEFAULT_FILTERS)
    assert config.conn_id == "autosec_backstage"
    assert (config.page_size, config.default_environment) == (200, Environment.PRODUCTION)
    with pytest.raises(ValidationError, match="pagesize"):
        BackstageSourceConfig(name="catalog", kind="backstage", pagesize=3)
    with pytest.raises(ValidationError, match="is not key=value"):
        BackstageSourceConfig(name="catalog", kind="backstage", filters=["kind=component&x=1"])
    with pytest.raises(ValidationError, match="is empty"):
        BackstageSourceConfig(name="catalog", kind="backstage", filters=[" , "])


def test_check_filter_normalises_spacing():
    assert (
        check_filter(" kind=component , spec.type=service,") == "kind=component,spec.type=service"
    )
    assert DEFAULT_FILTERS == ("kind=component,kind=resource,kind=system,kind=group,kind=user",)


def test_endpoint_from_an_airflow_style_connection():
    connection = SimpleNamespace(
        conn_type="http",
        host="backstage.internal",
        port=7007,
        schema="",
        login=None,
        password="tok-123",
        extra=json.dumps({"timeout": 12}),
    )
    endpoint = BackstageEndpoint.from_connection(connection)
    assert endpoint_from_connection(connection) == endpoint
    assert endpoint.base_url == "http://backstage.internal:7007"
    assert endpoint.url("/api/catalog/entities/by-query").endswith(
        ":7007/api/catalog/entities/by-query"
    )
    assert endpoint.headers()["Authorization"] == "Bearer tok-123"
    assert endpoint.timeout == (5.0, 12.0)
    assert "tok-123" not in repr(endpoint)


def test_endpoint_refuses_a_connection_without_host_or_a_bad_url():
    with pytest.raises(ValueError, match="no host"):
        BackstageEndpoint.from_connection(SimpleNamespace(host="", password="x"))
    with pytest.raises(ValueError, match="must be an http"):
        BackstageEndpoint("ftp://backstage")
