"""The file inventory source: reading (positions, formats, bad files) and the pure transform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autosec.domain.models import AssetKind, Criticality, Environment
from autosec.inventory.file import RawRow, SourceError, get, transform

HEADER = "id,name,kind,addresses,owner,environment,criticality,tags"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def load(path: Path, **kwargs):
    return transform(get(path, **kwargs), "cmdb-file")


# ------------------------------------------------------------------------------------- CSV


def test_csv_with_bom_and_crlf_is_normalised_into_assets(tmp_path):
    text = (
        f"\ufeff{HEADER}\r\n"
        " web-1 , Web One ,WEB_APP,https://shop.example.com| 10.0.0.5 ,team-shop,Production,"
        "Business-Critical,PCI|External\r\n"
        ",db-1,database,10.0.1.0/24,team-data,staging,high,\r\n"
    )
    batch = load(write(tmp_path, "assets.csv", text))
    assert batch.rejects == []
    web, db = batch.assets
    assert web.id == "web-1" and web.name == "Web One"
    assert web.kind is AssetKind.WEB_APP
    assert web.environment is Environment.PRODUCTION
    assert web.criticality is Criticality.BUSINESS_CRITICAL
    assert web.addresses == ("https://shop.example.com", "10.0.0.5")
    assert web.tags == ("pci", "external")
    assert web.source == "cmdb-file"
    assert db.id == "db-1", "id defaults to the name"
    assert db.addresses == ("10.0.1.0/24",) and db.tags == ()
    assert [o.line for o in batch.origins] == [2, 3]


def test_csv_line_numbers_are_physical_lines_across_quoted_newlines_and_blank_lines(tmp_path):
    text = (
        f"{HEADER}\n"
        'a,"multi\nline name",host,10.0.0.1,ops,test,low,\n'
        "\n"
        "b,b,vm,10.0.0.2,ops,test,low,\n"
    )
    path = write(tmp_path, "assets.csv", text)
    rows = get(path)
    assert [r.line for r in rows] == [2, 5]
    batch = transform(rows, "f")
    multiline, unknown_kind = batch.rejects
    assert multiline.reason == f"{path}:2: field 'name': contains control characters"
    assert unknown_kind.line == 5 and unknown_kind.file == str(path)
    assert unknown_kind.reason.startswith(f"{path}:5: field 'kind': unknown value 'vm'")


@pytest.mark.parametrize(
    "hostile",
    ["a;rm -rf /", "$(id)", "--script=x", "10.0.0.1`id`", "host\x00name"],
)
def test_hostile_address_rejects_the_row_with_the_validator_message(tmp_path, hostile):
    row = RawRow(
        "inv.yaml",
        7,
        0,
        {
            "name": "x",
            "kind": "host",
            "owner": "ops",
            "environment": "test",
            "criticality": "low",
            "addresses": ["10.0.0.1", hostile],
        },
    )
    batch = transform([row], "f")
    assert batch.assets == []
    (reject,) = batch.rejects
    assert reject.reason.startswith("inv.yaml:7: field 'addresses': invalid target ")
    assert repr(hostile) in reject.reason
    assert reject.asset_id == "x"


def test_csv_pipe_is_the_only_list_separator_so_a_semicolon_stays_in_one_rejected_address(
    tmp_path,
):
    text = f"{HEADER}\nx,x,host,10.0.0.1;rm -rf /|10.0.0.2,ops,test,low,\n"
    (reject,) = load(write(tmp_path, "a.csv", text)).rejects
    assert "'10.0.0.1;rm -rf /'" in reject.reason
    assert "shell characters" in reject.reason


def test_unknown_enums_and_missing_fields_are_all_named_in_one_reason(tmp_path):
    text = f"{HEADER}\nx,x,mainframe,,ops,prod,urgent,\ny,y,host,,ops,test\n"
    first, second = load(write(tmp_path, "a.csv", text)).rejects
    assert "field 'kind': unknown value 'mainframe'" in first.reason
    assert "field 'environment': unknown value 'prod': expected one of production" in first.reason
    assert "field 'criticality': unknown value 'urgent'" in first.reason
    assert second.line == 3 and "field 'criticality': missing" in second.reason


def test_duplicate_id_rejects_the_second_row_and_names_the_first(tmp_path):
    text = (
        f"{HEADER}\n"
        "same,a,host,,ops,test,low,\n"
        ",same,host,,ops,test,low,\n"
        "other,b,host,,ops,test,low,\n"
    )
    path = write(tmp_path, "a.csv", text)
    batch = load(path)
    assert [a.name for a in batch.assets] == ["a", "b"]
    (reject,) = batch.rejects
    assert reject.line == 3
    assert f"duplicate id 'same', first used at {path}:2" in reject.reason
    assert batch.rejected_ids == {"same"}


def test_empty_owner_passes_the_transform_for_the_quality_suite_to_judge(tmp_path):
    batch = load(write(tmp_path, "a.csv", f"{HEADER}\nx,x,host,,  ,test,low,\n"))
    assert batch.rejects == []
    assert batch.assets[0].owner == ""


def test_short_and_long_csv_rows(tmp_path):
    text = f"{HEADER}\nx,x,host\ny,y,host,,ops,test,low,,extra\n"
    short, long = load(write(tmp_path, "a.csv", text)).rejects
    assert "field 'owner': missing" in short.reason
    assert long.line == 3 and "9 cells but the header names 8 columns" in long.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("name,kind,owner,environment\n", "lacks required columns: criticality"),
        ("name,kind,owner,environment,criticality,name\n", "duplicate columns"),
        (f'{HEADER}\nx,"bad"quote,host,,o,test,low,\n', ":2: malformed CSV"),
        (f'{HEADER}\nx,"never closed,host\n', "malformed CSV"),
    ],
)
def test_malformed_csv_raises_source_error_naming_file_and_position(tmp_path, text, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(SourceError) as info:
        get(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_invalid_utf8_names_the_byte(tmp_path):
    path = write(tmp_path, "bad.csv", HEADER.encode() + b"\n\xff\n")
    offset = len(HEADER) + 1
    with pytest.raises(SourceError, match=rf"bad\.csv: byte {offset}: not valid UTF-8"):
        get(path)


# ------------------------------------------------------------------------------------ YAML

YAML_ASSETS = """\
# the estate
assets:
  - id: web-1
    name: web
    kind: web_app
    addresses: [https://www.example.com]
    owner: team-web
    environment: PRODUCTION
    criticality: high
    tags: [internet]

  - name: db
    kind: database
    addresses: 10.0.0.9
    owner: team-data
    environment: staging
    criticality: medium
  - name: nobody
    kind: host
    environment: test
    criticality: low
"""


def test_yaml_mapping_with_assets_and_line_numbers_from_marks(tmp_path):
    path = write(tmp_path, "inv.yml", YAML_ASSETS)
    rows = get(path)
    assert [r.line for r in rows] == [3, 12, 18]
    batch = transform(rows, "yaml-src")
    assert [a.id for a in batch.assets] == ["web-1", "db"]
    assert batch.assets[1].addresses == ("10.0.0.9",), "a single string is one address"
    (reject,) = batch.rejects
    assert reject.reason == f"{path}:18: field 'owner': missing"


def test_yaml_top_level_list_and_non_mapping_item(tmp_path):
    text = "- {name: a, kind: host, owner: o, environment: test, criticality: low}\n- just text\n"
    batch = load(write(tmp_path, "inv.yaml", text))
    assert [a.id for a in batch.assets] == ["a"]
    (reject,) = batch.rejects
    assert reject.line == 2 and "must be a mapping, found a str" in reject.reason


def test_yaml_duplicate_keys_reject_the_row(tmp_path):
    text = (
        "- name: a\n  kind: host\n  owner: o\n  owner: p\n  environment: test\n  criticality: low\n"
    )
    (reject,) = load(write(tmp_path, "inv.yaml", text)).rejects
    assert "duplicate keys: owner" in reject.reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a\n  kind: [host\n", r"inv\.yaml:3:1: malformed YAML"),
        ("just a string\n", "top level is a str"),
        ("owner: x\n", "mapping without an 'assets' key"),
        ("assets: {a: 1}\n", "'assets' is a dict"),
        ("", "empty YAML document"),
        ("- a\n---\n- b\n", "malformed YAML"),
        ("- !!python/object:os.system {}\n", "malformed YAML"),
    ],
)
def test_malformed_yaml_raises_source_error(tmp_path, text, message):
    with pytest.raises(SourceError, match=message):
        get(write(tmp_path, "inv.yaml", text))


# ------------------------------------------------------------------------------------ JSON


def test_json_rows_are_located_by_index(tmp_path):
    good = {"name": "a", "kind": "host", "owner": "o", "environment": "test", "criticality": "low"}
    bad = {**good, "name": "b", "addresses": [10]}
    path = write(tmp_path, "inv.json", json.dumps({"assets": [good, bad, 3]}))
    rows = get(path)
    assert [(r.line, r.index) for r in rows] == [(None, 0), (None, 1), (None, 2)]
    batch = transform(rows, "j")
    assert [a.id for a in batch.assets] == ["a"]
    first, second = batch.rejects
    assert first.reason == f"{path} item 1: field 'addresses': item 10 is a int, expected text"
    assert first.position == f"{path} item 1"
    assert second.index == 2 and "must be a mapping, found a int" in second.reason


def test_json_duplicate_keys_and_malformed_json(tmp_path):
    dup = (
        '[{"name": "a", "name": "b", "kind": "host", "owner": "o", "environment": "test", '
        '"criticality": "low"}]'
    )
    (reject,) = load(write(tmp_path, "d.json", dup)).rejects
    assert "duplicate keys: name" in reject.reason
    with pytest.raises(SourceError, match=r"bad\.json:2:1: malformed JSON"):
        get(write(tmp_path, "bad.json", '[{"name": "a",\n}]'))
    with pytest.raises(SourceError, match="top level is a int"):
        get(write(tmp_path, "n.json", "3"))


def test_format_by_extension_or_explicit(tmp_path):
    path = write(tmp_path, "inventory.txt", "[]")
    with pytest.raises(SourceError, match=r"cannot tell the format from the extension '\.txt'"):
        get(path)
    assert get(path, fmt="json") == []
    with pytest.raises(SourceError, match="unknown format 'xml'"):
        get(path, fmt="xml")
    with pytest.raises(SourceError, match="cannot read the file"):
        get(tmp_path / "missing.csv")
    with pytest.raises(SourceError, match="larger than the 10 limit"):
        get(write(tmp_path, "big.json", "[" + " " * 20 + "]"), max_bytes=10)


def test_transform_requires_a_source_name():
    with pytest.raises(ValueError, match="source name"):
        transform([], " ")
