from __future__ import annotations

import dataclasses

import pytest

from autosec.domain.fingerprint import FINGERPRINT_VERSION, fingerprint
from autosec.domain.models import Location, Observation, Severity


def _obs(**changes) -> Observation:
    base = Observation(
        asset_id="web-frontend",
        engine="nmap",
        rule_id="nmap.service-version-disclosed",
        title="Service discloses its version: Apache httpd 2.4.49",
        severity=Severity.LOW,
        location=Location(host="127.0.0.11", port=8080, protocol="tcp"),
        description="scanned at 2026-11-23T10:00:00Z",
        evidence={"product": "Apache httpd", "version": "2.4.49"},
    )
    return dataclasses.replace(base, **changes)


def test_fingerprint_ignores_volatile_text() -> None:
    first = fingerprint(_obs())
    reworded = fingerprint(
        _obs(
            title="Apache httpd 2.4.49 banner",
            description="scanned at 2026-12-01T00:00:00Z by nmap 7.95",
            evidence={"reason": "syn-ack ttl 64"},
            severity=Severity.MEDIUM,
        )
    )
    assert first == reworded
    assert len(first) == 64 and FINGERPRINT_VERSION == 2


def test_fingerprint_changes_with_identity_fields() -> None:
    base = fingerprint(_obs())
    assert fingerprint(_obs(asset_id="orders-db")) != base
    assert fingerprint(_obs(rule_id="nmap.open-port")) != base
    assert (
        fingerprint(_obs(location=Location(host="127.0.0.11", port=8443, protocol="tcp"))) != base
    )


def test_fingerprint_normalises_case_url_query_and_package_version() -> None:
    url_a = _obs(location=Location(url="https://Example.com/login?session=abc#top"))
    url_b = _obs(location=Location(url="https://example.com/login?session=xyz"))
    assert fingerprint(url_a) == fingerprint(url_b)
    pkg_a = _obs(location=Location(purl="pkg:pypi/django@3.2.1"))
    pkg_b = _obs(location=Location(purl="pkg:pypi/django@3.2.9"))
    pkg_c = _obs(location=Location(purl="pkg:pypi/flask@3.2.9"))
    assert fingerprint(pkg_a) == fingerprint(pkg_b) != fingerprint(pkg_c)


def test_a_leading_dot_is_part_of_a_file_name_not_spelling() -> None:
    """Version 1 stripped every leading '.', so '.env' and 'env' were one finding."""
    dotfile = _obs(location=Location(file=".env", line=1))
    plain = _obs(location=Location(file="env", line=1))
    relative = _obs(location=Location(file="./.env", line=1))
    windows = _obs(location=Location(file=".\\.env", line=1))
    assert fingerprint(dotfile) != fingerprint(plain)
    assert fingerprint(dotfile) == fingerprint(relative) == fingerprint(windows)
    assert fingerprint(dotfile, version=1) == fingerprint(plain, version=1)


def test_unparsable_urls_and_package_urls_still_have_a_stable_identity() -> None:
    broken_a = _obs(location=Location(url="http://[::1/login?session=1"))
    broken_b = _obs(location=Location(url="http://[::1/login?session=2#x"))
    assert fingerprint(broken_a) == fingerprint(broken_b)
    assert fingerprint(broken_a) != fingerprint(_obs(location=Location(url="http://[::1/logout")))
    bad_a = _obs(location=Location(purl="notapurl/thing@1.0"))
    bad_b = _obs(location=Location(purl="notapurl/thing@2.0?arch=x"))
    assert fingerprint(bad_a) == fingerprint(bad_b)


def test_every_stored_version_can_be_recomputed_and_versions_differ() -> None:
    observation = _obs()
    assert fingerprint(observation, version=1) != fingerprint(observation, version=2)
    assert fingerprint(observation) == fingerprint(observation, version=FINGERPRINT_VERSION)
    with pytest.raises(ValueError, match="unknown fingerprint version 99"):
        fingerprint(observation, version=99)
