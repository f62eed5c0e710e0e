"""Fingerprint properties: volatile fields never change it; identity fields always do.

Identity fields are compared after the normalisation the algorithm documents (case of the
rule, host, protocol and URL host; a leading ``./`` or ``/`` of a file path), so the strategies
draw values that differ after it: two spellings of one identity are tested apart.
"""

from __future__ import annotations

import dataclasses
import string
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from autosec.domain.fingerprint import ALGORITHMS, FINGERPRINT_VERSION, fingerprint
from autosec.domain.models import Location, Observation, Severity

SETTINGS = settings(max_examples=150, deadline=None)

lower = st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=20)
ident = lower.filter(lambda s: s.strip(" ") == s)
path_segment = st.text(
    alphabet=string.ascii_letters + string.digits + "-_.~", min_size=1, max_size=12
)
url_path = st.lists(path_segment, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
file_path = (
    st.lists(path_segment, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda p: not p.startswith("./") and p not in (".", ".."))
)
package_name = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=15)
version = st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3}){0,2}\Z")
query = st.dictionaries(lower, lower, max_size=3).map(
    lambda d: "&".join(f"{k}={v}" for k, v in d.items())
)
free_text = st.text(max_size=80)
evidence = st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=20), st.integers()))
# Hypothesis takes naive bounds and attaches the zone itself.
moment = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@st.composite
def observations(draw) -> Observation:
    """An observation with every kind of location field, as the engines fill them."""
    kind = draw(st.sampled_from(["port", "url", "file", "package"]))
    host = draw(ident)
    if kind == "port":
        location = Location(
            host=host,
            port=draw(st.integers(1, 65535)),
            protocol=draw(st.sampled_from(["tcp", "udp"])),
        )
    elif kind == "url":
        location = Location(url=f"https://{host}.example{draw(url_path)}")
    elif kind == "file":
        location = Location(file=draw(file_path), line=draw(st.integers(1, 100_000)))
    else:
        location = Location(purl=f"pkg:pypi/{draw(package_name)}@{draw(version)}")
    return Observation(
        asset_id=draw(ident),
        engine=draw(st.sampled_from(["nmap", "zap", "semgrep", "osv"])),
        rule_id=draw(ident),
        title=draw(free_text),
        severity=draw(st.sampled_from(list(Severity))),
        location=location,
        description=draw(free_text),
    )


# --- volatile fields never change it ------------------------------------------------------------


@SETTINGS
@given(
    observations(),
    free_text,
    free_text,
    evidence,
    st.sampled_from(list(Severity)),
    st.one_of(st.none(), st.floats(0, 10)),
    st.one_of(st.none(), st.sampled_from(["CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "x"])),
    st.sampled_from(["nmap", "zap", "importer"]),
)
def test_volatile_fields_never_change_the_fingerprint(
    observation, title, description, new_evidence, severity, score, vector, engine
) -> None:
    changed = dataclasses.replace(
        observation,
        title=title,
        description=description,
        evidence=new_evidence,
        severity=severity,
        cvss_score=score,
        cvss_vector=vector,
        engine=engine,
    )
    assert fingerprint(changed) == fingerprint(observation)


@SETTINGS
@given(observations(), moment, moment)
def test_timestamps_in_the_wording_never_change_it(observation, first, second) -> None:
    def at(when: datetime) -> Observation:
        return dataclasses.replace(
            observation,
            title=f"seen at {when.isoformat()}",
            description=f"scan started {when:%Y-%m-%d %H:%M:%S} took {when.microsecond} us",
            evidence={"scanned_at": when.isoformat(), "elapsed": str(timedelta(seconds=1))},
        )

    assert fingerprint(at(first)) == fingerprint(at(second))


@SETTINGS
@given(ident, url_path, query, query, lower)
def test_query_strings_and_fragments_never_change_it(host, path, q1, q2, fragment) -> None:
    def at(url: str) -> Observation:
        return Observation("a", "zap", "rule", "t", Severity.LOW, Location(url=url))

    base = f"https://{host}.example{path}"
    assert fingerprint(at(f"{base}?{q1}")) == fingerprint(at(f"{base}?{q2}#{fragment}"))
    assert fingerprint(at(base)) == fingerprint(at(f"{base}?{q1}"))


@SETTINGS
@given(package_name, version, version, st.sampled_from(["", "?arch=x86_64", "#src/lib"]))
def test_package_version_never_changes_it(name, first, second, suffix) -> None:
    def at(purl: str) -> Observation:
        return Observation("a", "osv", "GHSA-x", "t", Severity.HIGH, Location(purl=purl))

    assert fingerprint(at(f"pkg:pypi/{name}@{first}")) == fingerprint(
        at(f"pkg:pypi/{name}@{second}{suffix}")
    )


# --- identity fields always change it -----------------------------------------------------------


def _differs(observation: Observation, **changes) -> bool:
    return fingerprint(dataclasses.replace(observation, **changes)) != fingerprint(observation)


def _moved(observation: Observation, **changes) -> bool:
    location = dataclasses.replace(observation.location, **changes)
    return _differs(observation, location=location)


@SETTINGS
@given(observations(), ident, ident)
def test_asset_and_rule_always_change_it(observation, asset_id, rule_id) -> None:
    assume(asset_id != observation.asset_id and rule_id != observation.rule_id)
    assert _differs(observation, asset_id=asset_id)
    assert _differs(observation, rule_id=rule_id)


@SETTINGS
@given(ident, ident, st.integers(1, 65535), st.integers(1, 65535))
def test_host_port_and_protocol_always_change_it(host, other_host, port, other_port) -> None:
    assume(host != other_host and port != other_port)
    observation = Observation(
        "a", "nmap", "open-port", "t", Severity.LOW, Location(host=host, port=port, protocol="tcp")
    )
    assert _moved(observation, host=other_host)
    assert _moved(observation, port=other_port)
    assert _moved(observation, protocol="udp")


@SETTINGS
@given(ident, url_path, url_path)
def test_url_path_always_changes_it(host, path, other_path) -> None:
    assume(path != other_path)
    observation = Observation(
        "a", "zap", "rule", "t", Severity.LOW, Location(url=f"https://{host}.example{path}")
    )
    assert _moved(observation, url=f"https://{host}.example{other_path}")


@SETTINGS
@given(file_path, file_path, st.integers(1, 10**6), st.integers(1, 10**6))
def test_file_and_line_always_change_it(path, other_path, line, other_line) -> None:
    assume(path.lstrip("/") != other_path.lstrip("/") and line != other_line)
    observation = Observation(
        "a", "semgrep", "rule", "t", Severity.LOW, Location(file=path, line=line)
    )
    assert _moved(observation, file=other_path)
    assert _moved(observation, line=other_line)


@SETTINGS
@given(package_name, package_name, version)
def test_package_name_always_changes_it(name, other_name, installed) -> None:
    assume(name != other_name)
    observation = Observation(
        "a", "osv", "GHSA-x", "t", Severity.HIGH, Location(purl=f"pkg:pypi/{name}@{installed}")
    )
    assert _moved(observation, purl=f"pkg:pypi/{other_name}@{installed}")


@SETTINGS
@given(observations())
def test_every_known_version_is_deterministic_and_distinct(observation) -> None:
    prints = {version: fingerprint(observation, version) for version in ALGORITHMS}
    assert prints == {version: fingerprint(observation, version) for version in ALGORITHMS}
    assert len(set(prints.values())) == len(ALGORITHMS)
    assert prints[FINGERPRINT_VERSION] == fingerprint(observation)
