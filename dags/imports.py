"""imports: reports that teams' own scanners wrote (SARIF, Trivy, Grype, ZAP, ...), pushed to the
drop folder, are imported and triaged through the same path as autosec's engines.

A report dropped into ``$AUTOSEC_DROP_FOLDER/incoming/`` starts this DAG (an AssetWatcher
whose trigger claims the file); the report lands in ``done/``, or in ``failed/`` beside a
``.error`` note naming the problem. ``autosec import FILE`` does the same by hand.
"""

from __future__ import annotations

from airflow.sdk import dag

from autosec.airflow.assets import REPORT_DROPS
from autosec.airflow.dag_defaults import DEFAULT_ARGS, START_DATE
from autosec.airflow.tasks import import_dropped_reports


@dag(
    dag_id="imports",
    schedule=[REPORT_DROPS],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["autosec", "imports"],
    doc_md=__doc__,
)
def imports():
    import_dropped_reports()


imports()
