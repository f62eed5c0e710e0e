"""What triage knows about a finding beyond what the engine said: pure, plain data in and out.

- Known exploitation from the CISA KEV catalog: listed or not, the KEV due date, and whether the
  vulnerability is known to be used in ransomware campaigns.
- EPSS: the probability of exploitation in the next 30 days, and its percentile.
- CVSS v3.x / v4.0: the vector parsed with the ``cvss`` library, its base score, and two SSVC
  decision points *inferred* from it (flagged as such wherever they are shown):
  automatable (AV:N, AC:L, PR:N, UI:N, and AT:N in v4) and technical impact total (C, I and A
  all High in v3; VC, VI and VA all High in v4).
- The asset: criticality, environment, and exposure (the ``internet-facing`` tag).

Intelligence comes in as an :class:`Intel` the stage reads from the store once per run; nothing
here reads anything. A finding with several CVE ids is known exploited when any of them is, gets
the earliest KEV due date and the highest EPSS score among them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from autosec.domain.models import Asset, Observation

EXPOSED_TAG = "internet-facing"


@dataclass(frozen=True)
class KevEntry:
    """One CVE in the known-exploited catalog."""

    cve_id: str
    due_date: date | None = None
    ransomware: bool = False
    date_added: date | None = None


@dataclass(frozen=True)
class EpssScore:
    """One CVE's EPSS probability (0-1) and percentile (0-1)."""

    cve_id: str
    score: float
    percentile: float | None = None


@dataclass(frozen=True)
class Intel:
    """KEV entries and EPSS scores by upper-case CVE id (only the ids a run needs)."""

    kev: Mapping[str, KevEntry] = field(default_factory=dict)
    epss: Mapping[str, EpssScore] = field(default_factory=dict)


NO_INTEL = Intel()


def cve_ids_of(observations: Iterable[Observation]) -> set[str]:
    """Every CVE id the observations name, upper-cased: what one batched lookup needs."""
    return {c.strip().upper() for o in observations for c in o.cve_ids if c and c.strip()}


@dataclass(frozen=True)
class CvssFacts:
    """A parsed CVSS vector, or why it could not be used (``problem``)."""

    vector: str
    version: str | None = None
    base_score: float | None = None
    automatable: bool | None = None
    total_impact: bool | None = None
    problem: str | None = None


_AUTOMATABLE_V3 = {"AV": "N", "AC": "L", "PR": "N", "UI": "N"}
_AUTOMATABLE_V4 = {**_AUTOMATABLE_V3, "AT": "N"}


@lru_cache(maxsize=4096)
def parse_cvss(vector: str) -> CvssFacts:
    """Parse a ``CVSS:3.0/``, ``CVSS:3.1/`` or ``CVSS:4.0/`` vector; anything else is a problem.

    Never raises: a malformed vector gives facts with ``problem`` set, so one bad vector from
    one engine cannot stop the triage of a whole run, and the reason is kept with the finding.
    """
    from cvss import CVSS3, CVSS4
    from cvss.exceptions import CVSSError

    text = vector.strip()
    prefix = text[:9].upper()
    try:
        if prefix in ("CVSS:3.0/", "CVSS:3.1/"):
            parsed3 = CVSS3(text)
            metrics, score = parsed3.metrics, float(parsed3.scores()[0])
            version, impact_keys, automatable_wanted = prefix[5:8], ("C", "I", "A"), _AUTOMATABLE_V3
        elif prefix == "CVSS:4.0/":
            parsed4 = CVSS4(text)
            metrics, score = parsed4.metrics, float(parsed4.base_score)
            version, impact_keys, automatable_wanted = "4.0", ("VC", "VI", "VA"), _AUTOMATABLE_V4
        else:
            return CvssFacts(text, problem="not a CVSS v3.0, v3.1 or v4.0 vector")
    except CVSSError as exc:
        return CvssFacts(text, problem=f"malformed CVSS vector: {exc}")
    return CvssFacts(
        vector=text,
        version=version,
        base_score=score,
        automatable=all(metrics.get(k) == v for k, v in automatable_wanted.items()),
        total_impact=all(metrics.get(k) == "H" for k in impact_keys),
    )


@dataclass(frozen=True)
class Enrichment:
    """Everything enrichment found for one finding."""

    known_exploited: bool = False
    kev_due_date: date | None = None
    kev_ransomware: bool = False
    epss_score: float | None = None
    epss_percentile: float | None = None
    cvss: CvssFacts | None = None
    cvss_score: float | None = None
    environment: str | None = None
    criticality: str | None = None
    internet_facing: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready facts, for an event payload or an explanation."""
        return {
            "known_exploited": self.known_exploited,
            "kev_due_date": self.kev_due_date.isoformat() if self.kev_due_date else None,
            "kev_ransomware": self.kev_ransomware,
            "epss_score": self.epss_score,
            "epss_percentile": self.epss_percentile,
            "cvss_version": self.cvss.version if self.cvss else None,
            "cvss_score": self.cvss_score,
            "cvss_problem": self.cvss.problem if self.cvss else None,
            "environment": self.environment,
            "criticality": self.criticality,
            "internet_facing": self.internet_facing,
        }


NO_ENRICHMENT = Enrichment()


@dataclass(frozen=True)
class _IntelFacts:
    known_exploited: bool
    kev_due_date: date | None
    kev_ransomware: bool
    epss_score: float | None
    epss_percentile: float | None


_NOTHING_KNOWN = _IntelFacts(False, None, False, None, None)


def _intel_facts(cve_ids: tuple[str, ...], intel: Intel) -> _IntelFacts:
    if not cve_ids:
        return _NOTHING_KNOWN
    kev = [intel.kev[c] for c in cve_ids if c in intel.kev]
    epss = [intel.epss[c] for c in cve_ids if c in intel.epss]
    best = max(epss, key=lambda e: e.score) if epss else None
    due_dates = [k.due_date for k in kev if k.due_date is not None]
    return _IntelFacts(
        known_exploited=bool(kev),
        kev_due_date=min(due_dates) if due_dates else None,
        kev_ransomware=any(k.ransomware for k in kev),
        epss_score=best.score if best else None,
        epss_percentile=best.percentile if best else None,
    )


def _score(value: float | None) -> float | None:
    """An engine's score as a float; NaN and infinities are kept so the batch gate sees them."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def enrich(observation: Observation, asset: Asset | None, intel: Intel = NO_INTEL) -> Enrichment:
    """The enrichment of one observation on ``asset`` (None: not in the inventory)."""
    cve_ids = tuple(sorted({c.strip().upper() for c in observation.cve_ids if c and c.strip()}))
    facts = _intel_facts(cve_ids, intel)
    cvss = parse_cvss(observation.cvss_vector) if observation.cvss_vector else None
    score = _score(observation.cvss_score)
    if score is None and cvss is not None:
        score = cvss.base_score
    return Enrichment(
        known_exploited=facts.known_exploited,
        kev_due_date=facts.kev_due_date,
        kev_ransomware=facts.kev_ransomware,
        epss_score=facts.epss_score,
        epss_percentile=facts.epss_percentile,
        cvss=cvss,
        cvss_score=score,
        environment=asset.environment.value if asset else None,
        criticality=asset.criticality.value if asset else None,
        internet_facing=bool(asset and EXPOSED_TAG in asset.tags),
    )
