"""Where the intelligence feeds come from: the ``intel`` section of the estate file.

Each feed is a local snapshot (a path, relative to the estate file) and, optionally, the URL
the daily update downloads it from. Without a URL the snapshot is loaded as it is (an offline
site copies files in by other means). The published locations::

    osv:  https://osv-vulnerabilities.storage.googleapis.com/<ECOSYSTEM>/all.zip
    kev:  https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json
    epss: https://epss.empiricalsecurity.com/epss_scores-current.csv.gz

Example::

    intel:
      max_age_days: 7
      osv:
        - {name: pypi, path: feeds/osv-pypi.zip,
           url: "https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip"}
      kev: {path: feeds/kev.json,
            url: "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"}
      epss: {path: feeds/epss.csv.gz}
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeedSource(_Strict):
    path: Path
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        if parts.username or parts.password:
            raise ValueError(f"{url!r} carries credentials; feeds are public downloads")
        return url.strip()


class OsvFeedSource(FeedSource):
    """One OSV snapshot: a folder of records, a record file, or an ecosystem's ``all.zip``."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=60)

    @model_validator(mode="after")
    def _downloads_are_zips(self) -> OsvFeedSource:
        if self.url and self.path.suffix.lower() != ".zip":
            raise ValueError(
                f"osv feed {self.name!r}: a downloaded feed is an all.zip, so its path must end "
                f"in .zip (got {self.path})"
            )
        return self


class IntelConfig(_Strict):
    osv: list[OsvFeedSource] = Field(
        default_factory=lambda: [OsvFeedSource(name="local", path=Path("intel/osv"))]
    )
    kev: FeedSource = FeedSource(path=Path("intel/kev.csv"))
    epss: FeedSource = FeedSource(path=Path("intel/epss.csv"))
    max_age_days: int = Field(7, ge=1, description="older feeds are reported stale")
    download_timeout_seconds: float = Field(120, gt=0, le=3600)
    max_download_mib: int = Field(2048, ge=1, description="a larger download is refused")

    @field_validator("osv")
    @classmethod
    def _unique_names(cls, feeds: list[OsvFeedSource]) -> list[OsvFeedSource]:
        names = [f.name for f in feeds]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"osv feed names must be unique: {duplicates}")
        return feeds
