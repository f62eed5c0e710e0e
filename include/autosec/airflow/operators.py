"""EngineScanOperator: one engine over one batch of assets, as an Airflow task."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class EngineScanOperator(BaseOperator):
    """Run the registered engine ``engine`` over ``asset_ids`` and record the scan run.

    Mapped over batches by the scan DAG and capped by the engine's pool. A failed engine run is
    recorded (with its evidence) and the task fails, so the grid shows which batch broke.
    """

    template_fields = ("asset_ids", "engine")
    ui_color = "#9ad1d4"

    def __init__(self, *, engine: str, asset_ids: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.asset_ids = asset_ids

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException

        from autosec.airflow import runtime
        from autosec.engines.runner import Runner
        from autosec.stages.scan import Batch, run_batch

        estate = runtime.estate()
        batch = Batch(self.engine, tuple(self.asset_ids))
        with runtime.store() as conn:
            outcome = run_batch(
                conn,
                batch,
                estate.scan,
                runtime.blob_store(),
                Runner(),
                runtime.now,
                run_ref=runtime.run_ref(context),
                max_component_age_days=runtime.policy().policy.freshness.max_age_days,
            )
        for rejection in outcome.rejected_targets:
            self.log.warning("target rejected before any argv was built: %s", rejection)
        self.log.info(
            "scan run %s: %s, %s observations, evidence sha256 %s",
            outcome.scan_run_id,
            outcome.status,
            outcome.observations,
            outcome.evidence_sha256,
        )
        if outcome.status in ("failed", "timed_out"):
            raise AirflowException(
                f"{self.engine} scan run {outcome.scan_run_id} {outcome.status}: {outcome.error}"
            )
        return {"scan_run_id": outcome.scan_run_id, "status": outcome.status}
