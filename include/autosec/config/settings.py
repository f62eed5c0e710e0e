"""Process settings from the environment (``AUTOSEC_*``), with demo-friendly defaults."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEMO_ESTATE = Path(__file__).resolve().parent.parent / "demo" / "estate.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUTOSEC_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/autosec",
        description="autosec's store, used outside Airflow (inside it: the autosec_db connection)",
    )
    data_dir: str = Field(
        "file:///tmp/autosec-data",
        description="ObjectStoragePath base for evidence and reports (file://, s3://, gs://)",
    )
    estate: Path = Field(DEMO_ESTATE, description="the estate file: sources, ranges, engines")
    drop_folder: Path = Field(
        # not under /tmp: whoever can write the drop folder decides what gets imported
        default_factory=lambda: Path.home() / ".autosec" / "drop",
        description="reports pushed to <drop_folder>/incoming/ are imported (the imports DAG)",
    )
    requester: str = Field("autosec", description="identity that files approval requests")


def get_settings() -> Settings:
    return Settings()
