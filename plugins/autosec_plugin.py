from autosec.airflow.plugin import AutosecPlugin  # noqa: F401
