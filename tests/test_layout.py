"""The packages keep to their roles: what each may import, and no import circles.

Every import statement counts, including those inside functions and under
``TYPE_CHECKING``: a circle broken by a lazy import is still a circle, and a type
that crosses a boundary is still a dependency on the other side.
"""
from __future__ import annotations

import ast
import graphlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("config", "connectors", "mapping", "releases", "relsync", "reports", "sandboxes", "sync")
CLIENTS = ("jira", "pyairtable", "simple_salesforce", "requests")
STORE = ("sqlite3", "sqlite_utils", "psycopg")

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "connectors": ("sync", "releases", "reports", "relsync", "sandboxes", *STORE),
    "releases": ("sync", "connectors", "reports", "relsync", "sandboxes", *STORE, *CLIENTS, "flask"),
    "sync": ("reports", "relsync", "sandboxes", *CLIENTS),
    "reports": ("connectors", "relsync", "sandboxes", *CLIENTS),
    "mapping": ("connectors", "sync", "releases", "reports", "relsync", "sandboxes", *STORE, *CLIENTS),
    "config": ("connectors", "sync", "releases", "reports", "relsync", "sandboxes", *STORE, *CLIENTS),
    "sandboxes": tuple(package for package in OURS if package != "sandboxes"),
    "relsync": (),
}
"""Per package, the top-level names its modules may not import."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for package in OURS for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved, ``from p import m`` as ``p.m``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append((node.lineno, child if child in MODULES else base))
    return found


def test_the_layout_test_sees_every_package():
    assert {name.partition(".")[0] for name in MODULES} == set(OURS)
    assert len(MODULES) > 80


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_each_package_imports_only_what_its_role_allows(package):
    breaches = [
        f"{MODULES[name].relative_to(ROOT)}:{line} imports {target}"
        for name in MODULES
        if name.partition(".")[0] == package
        for line, target in imports_of(name, MODULES[name])
        if target.partition(".")[0] in FORBIDDEN[package]
    ]
    assert breaches == []


def import_circle(modules: dict[str, Path]) -> list[str] | None:
    """One circle among ``modules`` (module name -> file), or None."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        graph[name] |= {target for _, target in imports_of(name, path) if target in modules and target != name}
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def test_no_import_circles():
    assert import_circle(MODULES) is None


def test_the_checker_reads_lazy_relative_and_type_only_imports(tmp_path):
    """A breach hidden in a function or under TYPE_CHECKING is seen, and so is a circle made that way."""
    (tmp_path / "connectors").mkdir()
    leaky = tmp_path / "connectors" / "leaky.py"
    leaky.write_text(
        "from typing import TYPE_CHECKING\nfrom . import retry\n"
        "if TYPE_CHECKING:\n    import sqlite_utils\n\ndef f():\n    from sync.store import open_store\n"
    )
    assert [target for _, target in imports_of("connectors.leaky", leaky)] == [
        "typing", "connectors.retry", "sqlite_utils", "sync.store",
    ]
    first, second = tmp_path / "first.py", tmp_path / "second.py"
    first.write_text("import second\n")
    second.write_text("def later():\n    import first\n")
    assert sorted(set(import_circle({"first": first, "second": second}) or [])) == ["first", "second"]
