"""The project's own consistency: conda and pip agree on dependencies."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-forge names that differ from PyPI's
CONDA_NAMES = {"python-duckdb": "duckdb"}


def normalise(req: str) -> str:
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", req).groups()
    name = CONDA_NAMES.get(name, name).lower().replace("_", "-")
    return name + spec.replace(" ", "")


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip = {normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = {
        normalise(d) for d in env if isinstance(d, str) and not d.startswith(("python=", "pip"))
    }
    assert conda == pip


def locked_versions() -> dict[str, str]:
    """requirements.lock's pins that apply to this Python, name -> version."""
    from packaging.markers import Marker

    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line.startswith((" ", "#")):
            continue
        spec, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, version = spec.strip().split("==")
        pins[name.lower().replace("_", "-")] = version
    return pins


def test_the_lock_pins_every_dependency_within_pyprojects_ranges():
    """The two commands install requirements.lock: it must hold every dependency of
    pyproject.toml (and its dev extra) at a version the ranges allow, i.e. be refreshed
    (`make lock`) whenever the ranges change."""
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked_versions()
    for text in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="runs in the project's .venv, which `make` installs from the lock",
)
def test_the_installed_versions_are_the_locked_ones():
    from importlib.metadata import version

    pins = locked_versions()
    for name in ("numpy", "scipy", "pandas", "scikit-learn", "lifetimes", "duckdb"):
        assert version(name) == pins[name], f"{name}: {version(name)}, locked {pins[name]}"


# --- The package's structure (issue #21): no import cycle, no reach into private names. ---

PACKAGE = Path(__file__).resolve().parents[1] / "clmmodels"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every import of a module (at any depth: a lazy import still ties two modules), as
    (module imported, names taken, line)."""
    import ast

    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((base, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for base, names, _ in _imports(path):
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in modules] or [base]
            for t in targets:
                # A package's __init__ only hands names on; an import of it is not a tie to
                # the modules behind it (Python resolves those in order).
                if t in modules and t != name and modules[t].name != "__init__.py":
                    graph[name].add(t)
    return graph


def test_the_package_has_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for base, names, line in _imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            if private and base.startswith("clmmodels"):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line} {base} {private}")
    assert not found, found
