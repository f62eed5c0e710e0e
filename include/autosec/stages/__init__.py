"""Stage services: each loop stage composed from pure code, the store and injected edges.

The Airflow tasks and the ``autosec`` command call these; neither holds stage logic itself.
Nothing here imports Airflow.
"""
