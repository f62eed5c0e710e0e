"""The rules of the house, enforced: import contracts (.importlinter) and thin DAG files.

The contracts are checked on the real tree, and proven to bite: each probe adds one forbidden
import to a small tree that otherwise keeps every contract, and the named contracts must break.
"""

from __future__ import annotations

import ast
import configparser
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "include" / "autosec"
CONFIG = REPO / ".importlinter"
DAGS = REPO / "dags"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# Subpackages that do I/O by design. Every other subpackage must be in the pure-layer contracts.
EDGE_PACKAGES = {"airflow", "demo", "stages", "store"}


def lint_imports(cwd: Path, *contracts: str, pythonpath: Path | None = None):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    argv = [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(cwd / ".importlinter")]
    for contract in contracts:
        argv += ["--contract", contract]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def listed(section: str, key: str) -> list[str]:
    return contracts()[f"importlinter:contract:{section}"][key].split()


# --- the real tree -------------------------------------------------------------------------


def test_the_tree_keeps_every_import_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken" in result.stdout


def test_every_subpackage_is_either_pure_or_a_declared_edge():
    """A new subpackage must be added to the pure-layer contracts or declared an edge here."""
    pure = {
        name.removeprefix("autosec.") for name in listed("pure-layers-no-airflow", "source_modules")
    }
    found = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    unclassified = found - pure - EDGE_PACKAGES
    assert not unclassified, f"classify these subpackages in .importlinter: {sorted(unclassified)}"
    assert not pure & EDGE_PACKAGES
    sql_free = {
        name.removeprefix("autosec.") for name in listed("pure-layers-no-sql", "source_modules")
    }
    assert sql_free <= pure, "a package may not be SQL-free yet allowed to reach airflow"


# --- the contracts bite --------------------------------------------------------------------


def build_clean_tree(root: Path) -> None:
    """Every autosec package the contracts name, with the imports the allowed layers make."""
    config = contracts()
    modules = {"autosec.cli", *(f"autosec.{name}" for name in EDGE_PACKAGES)}
    for section in config.sections():
        if not section.startswith("importlinter:contract:"):
            continue
        for key in (
            "source_modules",
            "forbidden_modules",
            "protected_modules",
            "allowed_importers",
        ):
            modules.update(
                name
                for name in config[section].get(key, "").split()
                if name.startswith("autosec") and "*" not in name
            )
    for module in sorted(modules):
        path = root / "include" / Path(*module.split("."))
        if module == "autosec.cli":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".py").write_text('"""cli"""\n')
        else:
            path.mkdir(parents=True, exist_ok=True)
            (path / "__init__.py").touch()
    package = root / "include" / "autosec"
    (package / "__init__.py").touch()
    (package / "airflow" / "__init__.py").write_text("import airflow\nimport psycopg\n")
    (package / "store" / "__init__.py").write_text(
        "import alembic\nimport psycopg\nimport sqlalchemy\n"
    )
    (package / "stages" / "__init__.py").write_text("import psycopg\nimport autosec.store\n")
    (package / "cli.py").write_text("import autosec.store\nimport autosec.stages\n")
    (package / "demo" / "__init__.py").write_text("import autosec.airflow\nimport autosec.store\n")
    shutil.copy(CONFIG, root / ".importlinter")


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clean-tree")
    build_clean_tree(root)
    result = lint_imports(root, pythonpath=root / "include")
    assert result.returncode == 0, "the probe tree breaks a contract before any probe:\n" + (
        result.stdout + result.stderr
    )
    return root


PROBES = [
    # (module the probe lives in, its source, the contracts it must break)
    (
        "autosec.domain.probe",
        "import airflow",
        ["pure-layers-no-airflow", "only-airflow-layer-imports-airflow"],
    ),
    ("autosec.domain.probe", "from airflow.sdk import dag", ["pure-layers-no-airflow"]),
    ("autosec.triage.probe", "import psycopg", ["pure-layers-no-sql", "only-store-talks-sql"]),
    (
        "autosec.reporting.probe",
        "from sqlalchemy import text",
        ["pure-layers-no-sql", "only-store-talks-sql"],
    ),
    # Indirect: a pure layer reaching the database through the store.
    ("autosec.policy.probe", "from autosec.store import db", ["pure-layers-no-sql"]),
    (
        "autosec.engines.probe",
        "import autosec.airflow",
        ["pure-layers-no-airflow", "nothing-imports-airflow-layer"],
    ),
    ("autosec.cli", "import psycopg", ["only-store-talks-sql"]),
    ("autosec.demo.probe", "import alembic", ["only-store-talks-sql"]),
    ("autosec.cli", "from autosec.airflow import hooks", ["nothing-imports-airflow-layer"]),
    ("autosec.store.probe", "import airflow", ["only-airflow-layer-imports-airflow"]),
    ("autosec.store.probe", "import psycopg2", ["no-legacy-driver"]),
    # The demo may drive autosec.airflow, but not import airflow itself.
    ("autosec.demo.probe", "from airflow.sdk import DAG", ["only-airflow-layer-imports-airflow"]),
]


@pytest.mark.parametrize(("module", "source", "broken"), PROBES, ids=lambda v: str(v))
def test_a_forbidden_import_breaks_its_contract(
    clean_tree: Path, tmp_path: Path, module: str, source: str, broken: list[str]
):
    root = tmp_path / "tree"
    shutil.copytree(clean_tree, root)
    parts = module.split(".")
    target = root / "include" / Path(*parts[:-1]) / f"{parts[-1]}.py"
    with target.open("a") as handle:
        handle.write(f"\n{source}\n")

    result = lint_imports(root, *broken, pythonpath=root / "include")

    output = result.stdout + result.stderr
    assert result.returncode != 0, f"{module}: `{source}` passed the contracts:\n{output}"
    assert f"0 kept, {len(broken)} broken" in output, output
    assert module in output, output


def test_the_real_tree_with_airflow_in_the_domain_fails(tmp_path: Path):
    shutil.copytree(
        PACKAGE, tmp_path / "include" / "autosec", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    (tmp_path / "include" / "autosec" / "domain" / "probe.py").write_text("import airflow\n")

    result = lint_imports(tmp_path, "pure-layers-no-airflow", pythonpath=tmp_path / "include")

    assert result.returncode != 0, result.stdout + result.stderr
    assert "autosec.domain.probe -> airflow" in result.stdout


# --- DAG files stay thin ------------------------------------------------------------------

HEAVY = ("pandas", "great_expectations", "psycopg", "psycopg2", "autosec.engines")
# The registry only names engines ("module:Class" strings); importing it imports no engine.
LIGHT = ("autosec.engines.registry",)


def _is_heavy(module: str) -> bool:
    if any(module == light or module.startswith(light + ".") for light in LIGHT):
        return False
    return any(module == heavy or module.startswith(heavy + ".") for heavy in HEAVY)


def _is_dag_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return (isinstance(target, ast.Name) and target.id == "dag") or (
        isinstance(target, ast.Attribute) and target.attr == "dag"
    )


def _is_dag_function(node: ast.stmt) -> bool:
    """A @dag function's body runs when the file is parsed; a @task's runs only in a worker."""
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
        _is_dag_decorator(d) for d in node.decorator_list
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def heavy_imports(source: str, filename: str = "<dag>") -> list[tuple[int, str]]:
    """Heavy imports that run when the file is parsed: at module level, in module-level blocks,
    class bodies and @dag function bodies (which run at parse time); not inside tasks."""
    found: list[tuple[int, str]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.extend((node.lineno, a.name) for a in node.names if _is_heavy(a.name))
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = (f"{node.module}.{alias.name}" for alias in node.names)
                found.extend((node.lineno, name) for name in names if _is_heavy(name))
            elif isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With | ast.For | ast.While):
                visit(node.body)
                visit(getattr(node, "orelse", []))
            elif isinstance(node, ast.ClassDef) or _is_dag_function(node):
                visit(node.body)

    visit(ast.parse(source, filename=filename).body)
    return found


def test_heavy_import_check_finds_what_runs_at_parse_time():
    source = textwrap.dedent(
        """
        from __future__ import annotations
        from typing import TYPE_CHECKING
        import pandas as pd
        from autosec.engines.nmap.engine import NmapEngine
        from autosec.engines import nmap
        from autosec.engines.registry import ENGINES
        from autosec.engines import registry
        if TYPE_CHECKING:
            import psycopg
        try:
            import great_expectations
        except ImportError:
            pass

        def helper():
            import psycopg

        @dag(schedule=None)
        def stage():
            import psycopg2

            @task
            def work():
                import great_expectations as gx

        stage()
        """
    )
    assert heavy_imports(source) == [
        (4, "pandas"),
        (5, "autosec.engines.nmap.engine.NmapEngine"),
        (6, "autosec.engines.nmap"),
        (12, "great_expectations"),
        (21, "psycopg2"),
    ]


def dag_files() -> list[Path]:
    return sorted(DAGS.glob("*.py"))


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.name)
def test_dag_files_import_nothing_heavy_at_parse_time(path: Path):
    found = heavy_imports(path.read_text(), str(path))
    assert not found, "\n".join(f"{path.name}:{line}: imports {name}" for line, name in found)


# What a DAG file may load transitively from autosec.engines: the contract and the lazy registry.
ENGINE_PLUMBING = {"autosec.engines.base", "autosec.engines.registry"}

_MODULES_AFTER_IMPORT = """
import json, runpy, sys
for path in sys.argv[1:]:
    sys.path.insert(0, path.rsplit("/", 1)[0])  # as Airflow puts the DAG folder on sys.path
    runpy.run_path(path, run_name="dag_file")
print(json.dumps(sorted(sys.modules)))
"""


def slow_modules_loaded_by(files: list[Path], workdir: Path) -> list[str]:
    """Import ``files`` in a fresh interpreter; the slow modules that ended up loaded."""
    env = dict(os.environ, AIRFLOW_HOME=str(workdir), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    result = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER_IMPORT, *map(str, files)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{[f.name for f in files]} do not import:\n{result.stderr[-3000:]}"
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    return [
        name
        for name in loaded
        if name.split(".")[0] in ("pandas", "great_expectations")
        or (name.startswith("autosec.engines.") and name not in ENGINE_PLUMBING)
    ]


def test_slow_module_check_sees_transitive_imports(tmp_path: Path):
    helper = tmp_path / "helper_module.py"
    helper.write_text("import autosec.engines.nmap\nimport autosec.engines.registry\n")
    dag_file = tmp_path / "probe_dag.py"
    dag_file.write_text("import helper_module\n")
    assert slow_modules_loaded_by([dag_file], tmp_path) == ["autosec.engines.nmap"]


def test_importing_every_dag_file_pulls_in_nothing_slow(tmp_path: Path):
    """The same rule, transitively: what the DAG files' own imports import counts too."""
    files = dag_files()
    if not files:
        pytest.skip("no DAG files in dags/")
    slow = slow_modules_loaded_by(files, tmp_path)
    assert not slow, f"importing the DAG files imports {slow}"
