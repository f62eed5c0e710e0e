"""Match components (package URLs) against OSV advisories, with univers version ordering.

How a version is judged against one ``affected`` entry of an advisory:

- ECOSYSTEM and SEMVER ranges are read as a union of intervals, whatever the order of their
  events (real records list them unordered: ``introduced 2.16.0, fixed 2.16.3, introduced
  2.15.0, ...``). Each ``introduced`` opens an interval that the nearest ``fixed`` above it
  closes (exclusive) or the nearest ``last_affected`` at or above it closes (inclusive);
  ``introduced: 0`` means "from the first version". Versions compare with the ecosystem's own
  ordering from univers (Maven ``1.9 < 1.10.0``, PEP 440 pre-releases, npm semver, Debian
  epochs), never as strings.
- An explicit ``versions`` list matches by equality in that ordering (``1.0 == 1.0.0`` in PyPI).
- An entry with only GIT (commit) ranges and no ``versions`` list cannot place a release
  version: the result is :attr:`MatchStatus.UNKNOWN`, returned with the reason, never dropped.
  So is an entry whose ecosystem has no known ordering, or whose versions do not parse.
- Withdrawn advisories are ignored.
- GHSA's ``last_known_affected_version_range`` never overrides the events; when no fix exists
  and the version lies above it, the match carries a note saying so.

Advisories for the same vulnerability (a GHSA, a PYSEC and the CVE they alias) are merged into
one :class:`Match` listing every id, with the fixed version(s) of the intervals that hold the
component's version. A group is affected when any member says so; otherwise, when some member
decides "not affected", the unknowns of that group are dropped (another record answered).
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from packageurl import PackageURL
from univers.version_constraint import VersionConstraint
from univers.version_range import (
    RANGE_CLASS_BY_SCHEMES,
    build_range_from_github_advisory_constraint,
)

from autosec.intel.osv import Advisory, AffectedPackage, AffectedRange

# purl type -> OSV ecosystem. OS packages take the distribution from the purl namespace.
ECOSYSTEM_BY_PURL_TYPE: dict[str, str] = {
    "pypi": "PyPI",
    "maven": "Maven",
    "npm": "npm",
    "golang": "Go",
    "cargo": "crates.io",
    "gem": "RubyGems",
    "nuget": "NuGet",
    "composer": "Packagist",
    "hex": "Hex",
    "pub": "Pub",
    "hackage": "Hackage",
    "cran": "CRAN",
    "swift": "SwiftURL",
}
OS_ECOSYSTEM_BY_NAMESPACE: dict[tuple[str, str], str] = {
    ("deb", "debian"): "Debian",
    ("deb", "ubuntu"): "Ubuntu",
    ("apk", "alpine"): "Alpine",
    ("apk", "wolfi"): "Wolfi",
    ("apk", "chainguard"): "Chainguard",
    ("rpm", "redhat"): "Red Hat",
    ("rpm", "almalinux"): "AlmaLinux",
    ("rpm", "rocky-linux"): "Rocky Linux",
    ("rpm", "opensuse"): "openSUSE",
    ("rpm", "suse"): "SUSE",
}
# OSV ecosystem -> univers versioning scheme.
SCHEME_BY_ECOSYSTEM: dict[str, str] = {
    "PyPI": "pypi",
    "Maven": "maven",
    "npm": "npm",
    "Go": "golang",
    "crates.io": "cargo",
    "RubyGems": "gem",
    "NuGet": "nuget",
    "Packagist": "composer",
    "Hex": "hex",
    "Pub": "cargo",  # Dart's pub versions are semver
    "Debian": "deb",
    "Ubuntu": "deb",
    "Alpine": "apk",
    "Wolfi": "apk",
    "Chainguard": "apk",
    "Red Hat": "rpm",
    "AlmaLinux": "rpm",
    "Rocky Linux": "rpm",
    "openSUSE": "rpm",
    "SUSE": "rpm",
}
SEMVER_SCHEME = "cargo"  # univers' plain semver ordering, for SEMVER ranges
_CASE_INSENSITIVE = frozenset({"npm", "NuGet", "Packagist", "crates.io", "Pub", "Hex"})


class MatchStatus(enum.StrEnum):
    AFFECTED = "affected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Component:
    """One package from an SBOM, as its package URL names it."""

    purl: str
    ecosystem: str  # OSV ecosystem, without a release suffix ("Debian", not "Debian:11")
    name: str  # OSV package name ("group:artifact" for Maven, "@scope/name" for npm)
    version: str | None
    release: str | None = None  # distribution release for OS packages (purl "distro")

    @property
    def key(self) -> tuple[str, str]:
        return package_key(self.ecosystem, self.name)


@dataclass(frozen=True)
class Match:
    """One vulnerability (possibly several alias records) judged for one component."""

    component: Component
    status: MatchStatus
    advisory_ids: tuple[str, ...]  # the records that gave this status
    ids: tuple[str, ...]  # every id and alias of the group (CVE, GHSA, PYSEC, ...)
    fixed_versions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # for UNKNOWN: why; for AFFECTED: qualifications
    advisories: tuple[Advisory, ...] = ()

    @property
    def cve_ids(self) -> tuple[str, ...]:
        return tuple(i for i in self.ids if i.startswith("CVE-"))

    @property
    def primary_id(self) -> str:
        """A stable name for the group: its first GHSA, else its first record id."""
        ghsa = [i for i in self.advisory_ids if i.startswith("GHSA-")]
        return (ghsa or list(self.advisory_ids))[0]


AdvisoryLookup = Callable[[Collection[tuple[str, str]]], Iterable[Advisory]]


# --- package identity -----------------------------------------------------------------------


def base_ecosystem(ecosystem: str) -> str:
    """``Debian:11`` -> ``Debian``; ``PyPI`` stays ``PyPI``."""
    return ecosystem.split(":", 1)[0].strip()


def normalise_name(ecosystem: str, name: str) -> str:
    """The spelling two records of the same package share (PEP 503 for PyPI)."""
    ecosystem = base_ecosystem(ecosystem)
    name = name.strip()
    if ecosystem == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    if ecosystem in _CASE_INSENSITIVE:
        return name.lower()
    return name


def package_key(ecosystem: str, name: str) -> tuple[str, str]:
    """The lookup key of a package: (base ecosystem, normalised name)."""
    return base_ecosystem(ecosystem), normalise_name(ecosystem, name)


def component_from_purl(purl: str) -> Component:
    """A :class:`Component` from a package URL; ``ValueError`` naming the purl otherwise."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError as exc:
        raise ValueError(f"invalid package URL {purl!r}: {exc}") from None
    qualifiers = parsed.qualifiers if isinstance(parsed.qualifiers, dict) else {}
    kind = parsed.type.lower()
    namespace = parsed.namespace or ""
    release = None
    if kind in ECOSYSTEM_BY_PURL_TYPE:
        ecosystem = ECOSYSTEM_BY_PURL_TYPE[kind]
        if kind == "maven":
            name = f"{namespace}:{parsed.name}" if namespace else parsed.name
        elif namespace:
            name = f"{namespace}/{parsed.name}"
        else:
            name = parsed.name
    elif (kind, namespace.lower()) in OS_ECOSYSTEM_BY_NAMESPACE:
        ecosystem = OS_ECOSYSTEM_BY_NAMESPACE[(kind, namespace.lower())]
        # OS advisories name source packages: purls carry them as "source" (deb) or "origin".
        name = qualifiers.get("source") or qualifiers.get("origin") or parsed.name
        name = name.split(" ", 1)[0].split("@", 1)[0]
        release = qualifiers.get("distro")
    else:
        raise ValueError(f"package URL {purl!r}: no OSV ecosystem for purl type {kind!r}")
    return Component(purl, ecosystem, name, parsed.version or None, release)


# --- the index ----------------------------------------------------------------------------


class AdvisoryIndex:
    """Advisories by package key, for matching in memory (tests, the CLI, small feeds)."""

    def __init__(self, advisories: Iterable[Advisory] = ()) -> None:
        self._by_id: dict[str, Advisory] = {}
        self._by_key: dict[tuple[str, str], set[str]] = defaultdict(set)
        for advisory in advisories:
            self.add(advisory)

    def add(self, advisory: Advisory) -> None:
        known = self._by_id.get(advisory.id)
        if known is not None and known.modified > advisory.modified:
            return
        self._by_id[advisory.id] = advisory
        for entry in advisory.affected:
            if entry.name:
                self._by_key[package_key(entry.ecosystem, entry.name)].add(advisory.id)

    def __len__(self) -> int:
        return len(self._by_id)

    def lookup(self, keys: Collection[tuple[str, str]]) -> list[Advisory]:
        ids = sorted({i for key in keys for i in self._by_key.get(key, ())})
        return [self._by_id[i] for i in ids]


# --- matching -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Verdict:
    """One advisory's answer for one component."""

    status: str  # "affected", "unknown" or "not_affected"
    fixed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def match_components(components: Iterable[Component], lookup: AdvisoryLookup) -> list[Match]:
    """Every affected or undecidable (component, vulnerability) pair; one lookup call."""
    components = list(components)
    index = AdvisoryIndex(lookup({c.key for c in components}))
    matches: list[Match] = []
    for component in components:
        matches.extend(match_component(component, index.lookup([component.key])))
    return matches


def match_component(component: Component, advisories: Iterable[Advisory]) -> list[Match]:
    """The matches of one component against candidate advisories (others are skipped)."""
    verdicts: dict[str, tuple[Advisory, _Verdict]] = {}
    for advisory in advisories:
        if advisory.withdrawn is not None:
            continue
        entries = [e for e in advisory.affected if _same_package(e, component)]
        if entries:
            verdicts[advisory.id] = (advisory, _judge_advisory(component, entries))
    return [_merge(component, group) for group in _alias_groups(verdicts)]


def _same_package(entry: AffectedPackage, component: Component) -> bool:
    if not entry.name or package_key(entry.ecosystem, entry.name) != component.key:
        return False
    _, _, suffix = entry.ecosystem.partition(":")
    return not (suffix and component.release and not _same_release(suffix, component.release))


def _same_release(suffix: str, release: str) -> bool:
    """``Alpine:v3.22`` holds distro ``3.22.0``; ``Debian:11`` holds ``debian-11``/``11``;
    Ubuntu suffixes name versions (``22.04:LTS``) while purls often carry codenames: unknown
    spellings count as the same release rather than hide a match."""
    wanted = suffix.split(":", 1)[0].lower().lstrip("v")
    have = release.lower().rsplit("-", 1)[-1].lstrip("v")
    if not re.match(r"^\d", wanted) or not re.match(r"^\d", have):
        return True
    return have == wanted or have.startswith(wanted + ".")


def _judge_advisory(component: Component, entries: Sequence[AffectedPackage]) -> _Verdict:
    verdicts = [_judge_entry(component, entry) for entry in entries]
    affected = [v for v in verdicts if v.status == "affected"]
    if affected:
        return _Verdict(
            "affected",
            tuple(dict.fromkeys(f for v in affected for f in v.fixed)),
            tuple(dict.fromkeys(n for v in affected for n in v.notes)),
        )
    if any(v.status == "not_affected" for v in verdicts):
        return _Verdict("not_affected")
    return _Verdict("unknown", notes=tuple(dict.fromkeys(n for v in verdicts for n in v.notes)))


class _Unorderable(ValueError):
    pass


def _judge_entry(component: Component, entry: AffectedPackage) -> _Verdict:
    version = component.version
    if not version:
        return _Verdict("unknown", notes=("the component has no version",))
    scheme = SCHEME_BY_ECOSYSTEM.get(base_ecosystem(entry.ecosystem))
    versioned = [r for r in entry.ranges if r.type in ("ECOSYSTEM", "SEMVER")]
    git_only = bool(entry.ranges) and not versioned
    listed = _listed(version, entry.versions, scheme)
    try:
        hits = [
            hit
            for r in versioned
            if (hit := _range_hit(version, r, SEMVER_SCHEME if r.type == "SEMVER" else scheme))
        ]
    except _Unorderable as exc:
        if listed:
            return _Verdict("affected", notes=("listed in the advisory's versions",))
        return _Verdict("unknown", notes=(str(exc),))
    if hits:
        fixed = tuple(dict.fromkeys(f for f, _ in hits if f))
        notes = [n for _, n in hits if n]
        if not fixed:
            notes.extend(_beyond_last_known(version, entry, scheme))
        return _Verdict("affected", fixed, tuple(dict.fromkeys(notes)))
    if listed:
        return _Verdict("affected", notes=("listed in the advisory's versions",))
    if versioned or entry.versions:
        return _Verdict("not_affected")
    if git_only:
        repos = ", ".join(sorted({r.repo or "?" for r in entry.ranges}))
        return _Verdict(
            "unknown",
            notes=(f"only commit (GIT) ranges in {repos}: version {version} cannot be placed",),
        )
    return _Verdict("unknown", notes=("the advisory names no affected versions or ranges",))


def _listed(version: str, versions: Sequence[str], scheme: str | None) -> bool:
    if version in versions:
        return True
    if scheme is None or not versions:
        return False
    try:
        wanted = _parse(scheme, version)
    except _Unorderable:
        return False
    for candidate in versions:
        try:
            if _parse(scheme, candidate) == wanted:
                return True
        except _Unorderable:
            continue
    return False


def _range_hit(
    version: str, affected_range: AffectedRange, scheme: str | None
) -> tuple[str | None, str | None] | None:
    """(fixed version or None, note or None) when ``version`` lies in the range, else None."""
    if scheme is None:
        raise _Unorderable(f"no version ordering known for this ecosystem (version {version})")
    current = _parse(scheme, version)
    introduced = [e.version for e in affected_range.events if e.kind == "introduced"]
    fixed = [
        (e.version, _parse(scheme, e.version)) for e in affected_range.events if e.kind == "fixed"
    ]
    last = [
        (e.version, _parse(scheme, e.version))
        for e in affected_range.events
        if e.kind == "last_affected"
    ]
    for start_text in introduced:
        start = None if start_text == "0" else _parse(scheme, start_text)
        if start is not None and current < start:
            continue
        closing_fix = min(
            (f for f in fixed if start is None or f[1] > start), key=lambda f: f[1], default=None
        )
        closing_last = min(
            (v for v in last if start is None or v[1] >= start), key=lambda v: v[1], default=None
        )
        if closing_fix is not None and not current < closing_fix[1]:
            continue
        if closing_last is not None and not current <= closing_last[1]:
            continue
        if closing_fix is not None:
            return closing_fix[0], None
        if closing_last is not None:
            return None, f"no fix named; last affected version {closing_last[0]}"
        return None, "no fix named"
    return None


def _beyond_last_known(version: str, entry: AffectedPackage, scheme: str | None) -> list[str]:
    hint = entry.last_known_affected_version_range
    if not hint or scheme is None:
        return []
    try:
        known = build_range_from_github_advisory_constraint(scheme, hint)
        if _parse(scheme, version) in known:
            return []
    except (ValueError, TypeError, KeyError, _Unorderable):
        return [f"last known affected versions {hint!r} could not be read"]
    return [f"above the last version known to be affected ({hint}); no fix is named"]


@lru_cache(maxsize=65536)
def _parse(scheme: str, version: str) -> Any:
    version_class = RANGE_CLASS_BY_SCHEMES[scheme].version_class
    try:
        return version_class(version)
    except Exception as exc:  # univers raises many types for one meaning
        raise _Unorderable(f"{version!r} is not a valid {scheme} version") from exc


def _alias_groups(
    verdicts: dict[str, tuple[Advisory, _Verdict]],
) -> list[list[tuple[Advisory, _Verdict]]]:
    """Records that share an id or alias, transitively, in a stable order."""
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        while parent.setdefault(item, item) != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for advisory, _ in verdicts.values():
        root = find(advisory.id)
        for other in advisory.all_ids:
            parent[find(other)] = root
    groups: dict[str, list[tuple[Advisory, _Verdict]]] = defaultdict(list)
    for advisory_id in sorted(verdicts):
        groups[find(advisory_id)].append(verdicts[advisory_id])
    return [g for g in groups.values() if _group_status(g) is not None]


def _group_status(group: list[tuple[Advisory, _Verdict]]) -> MatchStatus | None:
    statuses = {v.status for _, v in group}
    if "affected" in statuses:
        return MatchStatus.AFFECTED
    if "not_affected" in statuses:
        return None
    return MatchStatus.UNKNOWN


def _merge(component: Component, group: list[tuple[Advisory, _Verdict]]) -> Match:
    status = _group_status(group) or MatchStatus.UNKNOWN  # None was filtered out before
    wanted = "affected" if status is MatchStatus.AFFECTED else "unknown"
    deciding = [(a, v) for a, v in group if v.status == wanted]
    fixed = {f for _, v in deciding for f in v.fixed}
    return Match(
        component=component,
        status=status,
        advisory_ids=tuple(sorted(a.id for a, _ in deciding)),
        ids=tuple(sorted({i for a, _ in group for i in a.all_ids})),
        fixed_versions=_sorted_versions(fixed, component.ecosystem),
        notes=tuple(dict.fromkeys(n for _, v in deciding for n in v.notes)),
        advisories=tuple(a for a, _ in deciding),
    )


def _sorted_versions(versions: Iterable[str], ecosystem: str) -> tuple[str, ...]:
    scheme = SCHEME_BY_ECOSYSTEM.get(base_ecosystem(ecosystem))
    items = sorted(set(versions))
    if scheme is None:
        return tuple(items)
    try:
        return tuple(sorted(items, key=lambda v: _parse(scheme, v)))
    except _Unorderable:
        return tuple(items)


def range_as_vers(affected_range: AffectedRange, ecosystem: str) -> str | None:
    """A ``vers:`` spec for an ECOSYSTEM/SEMVER range when it is one simple interval (used
    in evidence, so a reader sees the range in one string); None for anything else."""
    scheme = (
        SEMVER_SCHEME
        if affected_range.type == "SEMVER"
        else SCHEME_BY_ECOSYSTEM.get(base_ecosystem(ecosystem))
    )
    if scheme is None or affected_range.type == "GIT":
        return None
    introduced = [e.version for e in affected_range.events if e.kind == "introduced"]
    limits = [e for e in affected_range.events if e.kind in ("fixed", "last_affected")]
    if len(introduced) != 1 or len(limits) > 1:
        return None
    range_class = RANGE_CLASS_BY_SCHEMES[scheme]
    constraints = []
    try:
        if introduced[0] != "0":
            constraints.append(VersionConstraint(">=", _parse(scheme, introduced[0])))
        if limits:
            comparator = "<" if limits[0].kind == "fixed" else "<="
            constraints.append(VersionConstraint(comparator, _parse(scheme, limits[0].version)))
    except _Unorderable:
        return None
    if not constraints:
        return f"vers:{range_class.scheme}/*"
    return str(range_class(constraints=constraints))
