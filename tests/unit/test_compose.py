"""Static checks of the production stack: docker-compose.yaml, the Dockerfile, .dockerignore.

No Docker engine is needed: the files are parsed and cross-checked against each other and the
project (pyproject.toml, requirements.lock, the engine registry), so a broken reference fails here
rather than at `docker compose up`.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from autosec.engines.registry import ENGINES

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-worker",
    "airflow-triggerer",
    "airflow-init",
)
LONG_RUNNING_AIRFLOW_SERVICES = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-init")
REQUIRED_SERVICES = (
    "postgres",
    "redis",
    "autosec-db",
    "autosec-migrate",
    *AIRFLOW_SERVICES,
)
# The components Airflow's official compose file gives a healthcheck, plus autosec's store.
HEALTHCHECKED = (
    "postgres",
    "redis",
    "autosec-db",
    *LONG_RUNNING_AIRFLOW_SERVICES,
)
COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

_VARIABLE = re.compile(r"\$\$|\$\{\w+(?::?-(?P<default>[^}]*))?\}|\$\w+")


def interpolate(value: str) -> str:
    """Resolve compose variables as an empty environment would: defaults taken, $$ kept as $."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return match.group("default") or ""

    return _VARIABLE.sub(replace, value)


def command_text(value: str | list[str] | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else shlex.join(value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict[str, dict]:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: interpolate(str(value)) for key, value in env.items()}


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source for every short-syntax volume of a service."""
    result = {}
    for volume in service.get("volumes") or []:
        source, target, *_ = interpolate(volume).split(":")
        result[target] = source
    return result


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


# --- the interpolation helper itself -------------------------------------------------------


def test_interpolate_takes_defaults_and_unescapes_dollars():
    assert interpolate("a${X:-b}c${Y-d}e${Z}f$$g") == "abcde" + "f$g"
    assert interpolate("postgresql://u:${P:-pw}@h/db") == "postgresql://u:pw@h/db"


# --- compose: services, images, commands, health ------------------------------------------


def test_compose_file_is_yaml_with_every_required_service(compose: dict):
    assert isinstance(compose, dict), "docker-compose.yaml does not parse to a mapping"
    missing = set(REQUIRED_SERVICES) - set(compose.get("services") or {})
    assert not missing, f"docker-compose.yaml lacks services: {sorted(missing)}"


@pytest.mark.parametrize("name", [*AIRFLOW_SERVICES, "autosec-migrate"])
def test_airflow_services_run_the_image_built_from_the_dockerfile(services: dict, name: str):
    service = services[name]
    build = service.get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    assert context == ".", f"{name}: builds from {context!r}, expected the repository root"
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (REPO / dockerfile).is_file(), f"{name}: {dockerfile} does not exist"
    image = interpolate(service.get("image", ""))
    assert image and not image.startswith("apache/airflow"), (
        f"{name}: image {image!r} is not the project image (autosec would be missing)"
    )
    assert image == interpolate(services["airflow-apiserver"]["image"]), (
        f"{name}: runs a different image from the api-server"
    )


@pytest.mark.parametrize(("name", "command"), sorted(COMMANDS.items()))
def test_airflow_components_run_their_command(services: dict, name: str, command: str):
    assert command_text(services[name].get("command")) == command


@pytest.mark.parametrize("name", HEALTHCHECKED)
def test_components_have_a_healthcheck(services: dict, name: str):
    check = services[name].get("healthcheck") or {}
    test = check.get("test")
    assert test and test not in (["NONE"], "NONE"), f"{name}: no healthcheck"
    assert not check.get("disable"), f"{name}: healthcheck disabled"


def test_apiserver_publishes_the_port_its_healthcheck_and_workers_use(services: dict):
    api = services["airflow-apiserver"]
    assert "8080:8080" in [str(port) for port in api.get("ports", [])]
    assert "localhost:8080" in command_text(api["healthcheck"]["test"])
    worker = environment(services["airflow-worker"])
    url = urlsplit(worker["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (url.hostname, url.port, url.path) == ("airflow-apiserver", 8080, "/execution/")


@pytest.mark.parametrize("name", LONG_RUNNING_AIRFLOW_SERVICES)
def test_airflow_components_wait_for_init_databases_and_autosec_migrations(
    services: dict, name: str
):
    deps = depends_on(services[name])
    expected = {
        "postgres": "service_healthy",
        "redis": "service_healthy",
        "autosec-db": "service_healthy",
        "airflow-init": "service_completed_successfully",
        "autosec-migrate": "service_completed_successfully",
    }
    wrong = {dep: deps.get(dep) for dep, cond in expected.items() if deps.get(dep) != cond}
    assert not wrong, f"{name}: depends_on conditions wrong or missing: {wrong}"


def test_every_dependency_exists_and_can_be_met(services: dict):
    problems = []
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            if dep not in services:
                problems.append(f"{name} depends on undefined service {dep!r}")
                continue
            if condition not in CONDITIONS:
                problems.append(f"{name} -> {dep}: unknown condition {condition!r}")
            if condition == "service_healthy" and not services[dep].get("healthcheck"):
                problems.append(f"{name} waits for {dep} to be healthy; it has no healthcheck")
            if services[dep].get("profiles") and not service.get("profiles"):
                problems.append(f"{name} always starts but depends on {dep}, behind a profile")
    assert not problems, "\n".join(problems)


def test_dependencies_have_no_cycle(services: dict):
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "active", f"depends_on cycle: {' -> '.join((*path, name))}"
        state[name] = "active"
        for dep in depends_on(services.get(name, {})):
            visit(dep, (*path, name))
        state[name] = "done"

    for name in services:
        visit(name, ())


# --- compose: what every Airflow component sees ------------------------------------------


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_project_folders_are_mounted_where_airflow_reads_them(services: dict, name: str):
    volumes = mounts(services[name])
    for folder in ("dags", "plugins", "include", "logs", "config"):
        target = f"/opt/airflow/{folder}"
        assert target in volumes, f"{name}: ./{folder} is not mounted at {target}"
        assert volumes[target].rstrip("/") == f"./{folder}", (
            f"{name}: {target} comes from {volumes[target]!r}, not ./{folder}"
        )


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_configuration(services: dict, name: str):
    env = environment(services[name])
    assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor"
    assert env.get("AIRFLOW__CORE__LOAD_EXAMPLES", "").lower() == "false"
    postgres = environment(services["postgres"])
    metadata = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    backend = urlsplit(env["AIRFLOW__CELERY__RESULT_BACKEND"])
    for url in (metadata, backend):
        assert url.hostname == "postgres", f"{name}: {url.geturl()} is not the postgres service"
        assert (url.username, url.password, url.path.lstrip("/")) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            postgres["POSTGRES_DB"],
        ), f"{name}: {url.geturl()} does not match the postgres service's credentials"
    broker = urlsplit(env["AIRFLOW__CELERY__BROKER_URL"])
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", "redis", 6379)


@pytest.mark.parametrize("name", [*AIRFLOW_SERVICES, "autosec-migrate"])
def test_autosec_store_connection_points_at_autosec_db(services: dict, name: str):
    env = environment(services[name])
    store = environment(services["autosec-db"])
    for key in ("AIRFLOW_CONN_AUTOSEC_DB", "AUTOSEC_DATABASE_URL"):
        assert key in env, f"{name}: {key} is not set"
        url = urlsplit(env[key])
        assert url.scheme in ("postgres", "postgresql"), f"{name}: {key} is not a postgres URL"
        assert (url.hostname, url.port or 5432) == ("autosec-db", 5432), (
            f"{name}: {key} points at {url.hostname}:{url.port}, not the autosec-db service"
        )
        assert (url.username, url.password, url.path.lstrip("/")) == (
            store["POSTGRES_USER"],
            store["POSTGRES_PASSWORD"],
            store["POSTGRES_DB"],
        ), f"{name}: {key} does not match autosec-db's credentials"


def test_autosec_db_is_a_persistent_postgres_15(services: dict, compose: dict):
    store = services["autosec-db"]
    assert store["image"].startswith("postgres:15")
    data = mounts(store).get("/var/lib/postgresql/data")
    assert data in (compose.get("volumes") or {}), "autosec-db keeps its data in no named volume"
    assert store["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_ticketing_connection_defaults_to_a_service_of_this_stack(services: dict, name: str):
    url = urlsplit(environment(services[name])["AIRFLOW_CONN_AUTOSEC_TICKETING"])
    assert url.scheme in ("http", "https"), "the ticketing connection is not an HTTP connection"
    assert url.hostname in services, f"ticketing host {url.hostname!r} is no service here"
    ticketing = services[url.hostname]
    argv = ticketing["command"]
    assert str(url.port) == str(argv[argv.index("--port") + 1]), "ticketing port mismatch"
    assert url.password == environment(ticketing)["AUTOSEC_TICKETING_TOKEN"], (
        "the connection's token is not the one the ticketing service expects"
    )


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_evidence_store_is_shared_by_every_component(services: dict, compose: dict, name: str):
    data_dir = environment(services[name]).get("AUTOSEC_DATA_DIR", "")
    assert data_dir, f"{name}: AUTOSEC_DATA_DIR is not set"
    url = urlsplit(data_dir)
    if url.scheme == "file":
        source = mounts(services[name]).get(url.path.rstrip("/"))
        assert source in (compose.get("volumes") or {}), (
            f"{name}: {url.path} is not on a named volume, so workers and the api-server "
            "would each see their own evidence"
        )


def test_autosec_migrate_upgrades_the_store_once(services: dict):
    migrate = services["autosec-migrate"]
    argv = command_text(migrate.get("entrypoint")) + " " + command_text(migrate.get("command"))
    assert "autosec db upgrade" in argv
    assert depends_on(migrate) == {"autosec-db": "service_healthy"}
    assert str(migrate.get("restart", "no")) in ("no", "on-failure")


def test_init_migrates_airflow_and_creates_a_pool_per_registered_engine(services: dict):
    script = command_text(services["airflow-init"].get("command"))
    assert "airflow db migrate" in script
    missing = [name for name in ENGINES if f"airflow pools set {name} " not in script]
    assert not missing, f"airflow-init creates no pool for engines {missing}"
    assert 'airflow pools set nmap 4 "nmap scans"' in script


# --- Dockerfile and .dockerignore ----------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def pinned(requirement_lines: list[str], package: str) -> str:
    for line in requirement_lines:
        match = re.fullmatch(rf"{re.escape(package)}==([^\s;]+).*", line.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"{package} is not pinned")


def test_image_is_airflow_at_the_version_the_project_pins():
    base = next(args for keyword, args in dockerfile_instructions() if keyword == "FROM")
    match = re.fullmatch(r"apache/airflow:(?P<version>[\d.]+)-python(?P<python>[\d.]+)", base)
    assert match, f"unexpected base image {base!r}"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    lock = (REPO / "requirements.lock").read_text().splitlines()
    assert match["version"] == pinned(pyproject["project"]["dependencies"], "apache-airflow")
    assert match["version"] == pinned(lock, "apache-airflow")
    assert match["python"] == "3.11"


def test_dockerfile_installs_nmap_as_root_and_runs_as_airflow():
    user = "root"
    installed = False
    for keyword, args in dockerfile_instructions():
        if keyword == "USER":
            user = args
        if keyword == "RUN" and re.search(r"apt-get install\b.*\bnmap\b", args):
            assert user == "root", "apt-get runs as a user that cannot install packages"
            assert "--no-install-recommends" in args
            assert "rm -rf /var/lib/apt/lists/*" in args, "apt lists are left in the layer"
            installed = True
    assert installed, "the Dockerfile does not install nmap"
    assert user == "airflow", f"the image ends as user {user!r}, not airflow"


def test_dockerfile_installs_the_project_under_the_lock():
    instructions = dockerfile_instructions()
    copied = [args for keyword, args in instructions if keyword == "COPY"]
    assert any("pyproject.toml" in c and "requirements.lock" in c for c in copied)
    assert any(re.search(r"(^|\s)include/?\s", c) for c in copied), "include/ is not copied"
    installs = [
        args for keyword, args in instructions if keyword == "RUN" and "pip install" in args
    ]
    assert installs, "the Dockerfile runs no pip install"
    argv = shlex.split(installs[0].split("&&")[0])
    assert "--no-cache-dir" in argv
    assert "-c" in argv, "pip install does not take requirements.lock as its constraints"
    assert argv[argv.index("-c") + 1].endswith("requirements.lock")
    assert "/opt/airflow" in argv or "." in argv, "the project itself is not installed"
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    airflow = pinned(pyproject["project"]["dependencies"], "apache-airflow")
    assert f"apache-airflow=={airflow}" in argv, "pip may move Airflow off the base image's version"


def copy_sources() -> list[str]:
    sources = []
    for keyword, args in dockerfile_instructions():
        if keyword in ("COPY", "ADD"):
            parts = [p for p in args.split() if not p.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: * and ? stay within a path segment, ** crosses them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            members = pattern[i + 1 : end]
            out += "[" + ("^" + members[1:] if members.startswith("!") else members) + "]"
            i = end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, '/'-separated) out of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        regex = glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.match(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_pattern_semantics():
    assert glob_regex("**/__pycache__").match("include/autosec/__pycache__")
    assert glob_regex("**/__pycache__").match("__pycache__")
    assert glob_regex("**/*.py[cod]").match("a/b/c.pyc")
    assert not glob_regex("**/*.py[cod]").match("a/b/c.py")
    assert not glob_regex("*.md").match("docs/x.md")
    assert glob_regex(".env.*").match(".env.local")
    assert not glob_regex("tests").match("include/tests")


def test_build_context_keeps_secrets_and_local_state_out():
    for path in (".git/HEAD", ".venv/bin/python", ".env", "config/airflow.cfg", "logs/x.log"):
        assert dockerignored(path), f"{path} would be sent to the Docker build"
    for path in ("include/autosec.egg-info/PKG-INFO", "include/autosec/domain/__pycache__/m.pyc"):
        assert dockerignored(path), f"{path} would be copied into the image"


@pytest.mark.parametrize("source", copy_sources())
def test_everything_the_dockerfile_copies_is_in_the_build_context(source: str):
    path = REPO / source
    assert path.exists(), f"the Dockerfile copies {source}, which does not exist"
    samples = [source.rstrip("/")]
    if path.is_dir():
        files = (p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        samples += [str(p.relative_to(REPO)) for p in files if ".egg-info" not in str(p)]
    ignored = [sample for sample in samples if dockerignored(sample)]
    assert not ignored, f".dockerignore drops files the image needs: {ignored[:5]}"
