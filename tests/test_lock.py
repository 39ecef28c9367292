"""requirements.lock pins every dependency pyproject.toml names, inside its ranges, and the
environment the tests run in was installed from it."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from tools.lock import canonical, project_requirements

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def read_lock(path: Path = ROOT / "requirements.lock") -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = LINE.match(line)
        assert match, f"not an exact pin: {raw!r}"
        name = canonical(match[1])
        assert name not in pins, f"{name} pinned twice"
        pins[name] = match[2]
    return pins


LOCK = read_lock()
REQUIREMENTS = project_requirements()


def test_the_requirements_include_the_dev_extras() -> None:
    names = {canonical(r.name) for r in REQUIREMENTS}
    assert {"typer", "celery", "pytest", "ruff", "mypy"} <= names


@pytest.mark.parametrize("req", REQUIREMENTS, ids=str)
def test_every_dependency_in_pyproject_is_pinned_in_the_lock_within_its_range(
    req: Requirement,
) -> None:
    name = canonical(req.name)
    assert name in LOCK, f"{req.name} is in pyproject.toml but not in requirements.lock"
    assert req.specifier.contains(LOCK[name], prereleases=True), (
        f"the lock pins {name}=={LOCK[name]}, outside pyproject's {req}; run `make lock`"
    )


def test_the_libraries_whose_internals_the_code_touches_have_upper_bounds() -> None:
    bounded = {canonical(r.name): r.specifier for r in REQUIREMENTS}
    for name in ("typer", "click", "celery", "sqlalchemy", "captum"):
        assert any(s.operator in ("<", "<=", "~=", "==") for s in bounded[name]), name


def test_the_installed_packages_are_the_locked_versions() -> None:
    wrong = {}
    for name, version in LOCK.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a platform-only pin (CUDA wheels) this machine does not need
        # "==2.14.1" admits a local build such as 2.14.1+cpu (the Docker image's torch)
        if not SpecifierSet(f"=={version}").contains(installed, prereleases=True):
            wrong[name] = f"installed {installed}, locked {version}"
    assert not wrong, f"the environment was not installed from the lock: {wrong}"
