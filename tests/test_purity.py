"""The sans-IO cores must not import I/O, clock or concurrency modules."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "controller"
CORES = ("raft", "coord", "zk", "metadata", "sim")
FORBIDDEN = {"trio", "socket", "asyncio", "time", "os", "threading", "selectors", "subprocess"}


def _core_files() -> list[pathlib.Path]:
    files: list[pathlib.Path] = []
    for core in CORES:
        base = ROOT / core
        if base.is_dir():
            # A package's `__main__` is a command-line shell around its core (the
            # simulator's seed runner times runs and uses processes), not part of it.
            files.extend(p for p in sorted(base.rglob("*.py")) if p.name != "__main__.py")
    return files


def _imported_roots(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_raft_core_exists() -> None:
    # The purity check below must never pass vacuously.
    assert (ROOT / "raft" / "core.py").is_file()


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_is_pure(path: pathlib.Path) -> None:
    bad = _imported_roots(path) & FORBIDDEN
    assert not bad, f"{path} imports {sorted(bad)}"
