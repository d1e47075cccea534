"""Helpers of the layering tests (no tests here): which modules a package's files import."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "l2sae"
TASKS = ("training", "editing", "evaluation", "app")


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved against its package in l2sae)."""
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1] if path.is_relative_to(PACKAGE) else ()
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def package_files(package: str) -> list[Path]:
    """The ``.py`` files of ``l2sae.<package>`` (none when it is not a package)."""
    return sorted((PACKAGE / package).rglob("*.py")) if (PACKAGE / package).is_dir() else []
