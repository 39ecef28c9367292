"""Imports point one way (docs/architecture.md); read with ``ast``, nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xaiq"
MODULES = sorted(PACKAGE.rglob("*.py"))
# every file of ours that may import a name: no private name crosses a module boundary
OUR_FILES = sorted([*MODULES, *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])
HEAVY = ("torch", "torchvision", "captum")

FORBIDDEN = {
    "xai": (
        "xaiq.db",
        "xaiq.analysis",
        "xaiq.broker",
        "xaiq.report",
        "xaiq.results",
        "xaiq.scheduler",
        "xaiq.worker",
        "xaiq.cli",
        "celery",
        "sqlalchemy",
        "redis",
        "alembic",
        "kombu",
    ),
    # the store only: statistics over its rows are the analysis layer's
    "db": (
        *HEAVY,
        "numpy",
        "scipy",
        "pandas",
        "xaiq.xai",
        "xaiq.analysis",
        "xaiq.broker",
        "xaiq.scheduler",
        "xaiq.worker",
        "xaiq.report",
        "xaiq.results",
        "xaiq.cli",
        "celery",
    ),
    # above the store, below every caller: imports db only
    "analysis": (
        *HEAVY,
        "xaiq.xai",
        "xaiq.broker",
        "xaiq.scheduler",
        "xaiq.worker",
        "xaiq.report",
        "xaiq.results",
        "xaiq.cli",
        "celery",
    ),
    # the broker is shared by the scheduler and the workers, so it imports neither
    "broker": (
        "xaiq.scheduler",
        "xaiq.worker",
        "xaiq.cli",
        "xaiq.db",
        "xaiq.xai",
        "torch",
        "sqlalchemy",
    ),
    # the scheduler publishes through the broker module and never imports worker code
    "scheduler": ("xaiq.worker", "xaiq.cli", "celery.worker"),
    "worker": ("xaiq.cli",),
    # the web app reads the store through analysis and report; it never runs or submits work
    "serve": ("xaiq.worker", "xaiq.scheduler", "xaiq.broker", "xaiq.cli", "celery"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(tree: ast.AST, module: str) -> list[tuple[str, ast.stmt]]:
    """Every imported module name (absolute) with the statement that imports it."""
    found: list[tuple[str, ast.stmt]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                package = module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.append((base, node))
            found += [(f"{base}.{alias.name}", node) for alias in node.names]
    return found


def top_level_imports(tree: ast.Module) -> list[str]:
    """Imports that run when the module is imported (not inside functions or classes)."""
    names: list[str] = []
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    stack += child.body if isinstance(child, ast.ExceptHandler) else [child]
    return names


def hits(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("path", MODULES, ids=[module_name(p) for p in MODULES])
def test_imports_point_one_way(path):
    module = module_name(path)
    layer = module.split(".")[1] if "." in module else ""
    tree = ast.parse(path.read_text(), filename=str(path))
    if layer in FORBIDDEN:
        bad = sorted({n for n, _ in imports(tree, module) if hits(n, FORBIDDEN[layer])})
        assert not bad, f"{module} (layer {layer}) imports {bad}"
    if layer == "cli":
        web = ("starlette", "uvicorn", "jinja2", "xaiq.serve")  # `xaiq serve` only, lazily
        heavy = [n for n in top_level_imports(tree) if hits(n, (*HEAVY, *web))]
        assert not heavy, f"{module} imports {heavy} at module level"


def test_the_checker_sees_a_forbidden_import():
    tree = ast.parse("def f():\n    from xaiq.db.models import Job\n")
    assert hits(imports(tree, "xaiq.xai.x")[0][0], FORBIDDEN["xai"])
    tree = ast.parse("try:\n    import torch\nexcept ImportError:\n    pass\n")
    assert top_level_imports(tree) == ["torch"]


def test_every_layer_has_modules_to_check():
    layers = {module_name(p).split(".")[1] for p in MODULES if module_name(p).count(".")}
    assert {"xai", "db", "analysis", "cli", "broker", "scheduler", "worker"} <= layers


def test_the_checker_sees_the_scheduler_importing_worker_code():
    tree = ast.parse("def publish():\n    from xaiq.worker.celery_app import app\n")
    found = [n for n, _ in imports(tree, "xaiq.scheduler.loop")]
    assert any(hits(n, FORBIDDEN["scheduler"]) for n in found)


def private_imports(tree: ast.AST) -> list[str]:
    """``from xaiq.m import _name`` (or a relative ``from .m import _name``): a private name
    used outside the module that owns it."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or hits(node.module or "", ("xaiq",))):
            found += [
                f"{node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


OUR_MODULES = {module_name(p) for p in MODULES}


def private_attributes(tree: ast.AST) -> list[str]:
    """``module._name`` where ``module`` is one of ours bound by ``import xaiq.m as module``
    or ``from xaiq.pkg import module``: a private name reached around the import check."""
    bound: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in OUR_MODULES:
                    bound[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and hits(node.module or "", ("xaiq",)):
            for a in node.names:
                if f"{node.module}.{a.name}" in OUR_MODULES:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            private = node.attr.startswith("_") and not node.attr.startswith("__")
            if private and node.value.id in bound:
                found.append(f"{bound[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("path", OUR_FILES, ids=[str(p.relative_to(ROOT)) for p in OUR_FILES])
def test_no_private_name_is_imported_from_another_module(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    private = private_imports(tree)
    if path.is_relative_to(PACKAGE):  # (tests may patch a module's private state)
        private += private_attributes(tree)
    assert not private, f"{path.relative_to(ROOT)} imports private names {private}"


def test_the_checker_sees_a_private_import():
    assert private_imports(ast.parse("from xaiq.worker.compute import _message, ok\n")) == [
        "xaiq.worker.compute._message"
    ]
    assert private_imports(ast.parse("from .jobs import _wait\n")) == ["jobs._wait"]
    assert private_imports(ast.parse("from os import _exit\nfrom x import __all__\n")) == []
    assert private_imports(ast.parse("from xaiq.db.jobs import (\n    ok,\n    _hidden,\n)\n")) == [
        "xaiq.db.jobs._hidden"
    ]
    code = "from xaiq.db import jobs\nimport xaiq.worker.compute as c\njobs._wait(c._models)\n"
    assert sorted(private_attributes(ast.parse(code))) == [
        "xaiq.db.jobs._wait",
        "xaiq.worker.compute._models",
    ]
    assert private_attributes(ast.parse("import os\nos._exit(0)\nself._x = 1\n")) == []


def test_the_checker_sees_the_store_importing_statistics():
    tree = ast.parse("import numpy as np\nfrom xaiq.analysis.queries import parse_names\n")
    found = [n for n, _ in imports(tree, "xaiq.db.export")]
    assert sorted(n for n in found if hits(n, FORBIDDEN["db"])) == [
        "numpy",
        "xaiq.analysis.queries",
        "xaiq.analysis.queries.parse_names",
    ]
    tree = ast.parse("def f():\n    from xaiq.xai.models import load_model\n")
    assert any(hits(n, FORBIDDEN["analysis"]) for n, _ in imports(tree, "xaiq.analysis.x"))
