# The image every service in docker-compose.yaml runs: Airflow 3.3.2 with autosec and its scan
# engines installed. Build with `docker compose build` (or `docker build -t autosec-airflow .`).
FROM apache/airflow:3.3.2-python3.11

# Scan engines come from the distribution's packages. nmap runs unprivileged (connect scans), so
# the image grants it no extra capabilities.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends nmap \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*
USER airflow

# The project, installed (not editable) so every component imports the same code. include/ stays
# at /opt/airflow/include for the estate and policy files; docker-compose.yaml mounts the working
# copy over it.
WORKDIR /opt/airflow
COPY --chown=airflow:0 pyproject.toml requirements.lock /opt/airflow/
COPY --chown=airflow:0 include/ /opt/airflow/include/

# requirements.lock is a constraint: autosec's dependencies install at the locked versions, and
# Airflow stays at the base image's 3.3.2. The Celery provider (CeleryExecutor) is installed by name
# so its dependencies resolve against the same constraints.
RUN pip install --no-cache-dir -c /opt/airflow/requirements.lock \
        /opt/airflow \
        "apache-airflow==3.3.2" \
        "apache-airflow-providers-celery==3.26.0" \
    && rm -rf /opt/airflow/build /opt/airflow/include/autosec.egg-info \
    && autosec --help >/dev/null \
    && nmap --version

# Evidence and reports (AUTOSEC_DATA_DIR); a named volume mounted here starts with this owner.
RUN mkdir -p /opt/airflow/data
