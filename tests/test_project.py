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
