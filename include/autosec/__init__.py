"""autosec: the autonomous security loop on Apache Airflow."""
