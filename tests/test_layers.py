"""Dependencies point inward (README, "Layout"): every import of a project package, at module
level or inside a function, read from the source."""

from __future__ import annotations

import ast

import pytest

from tests.paths import ROOT

# package -> the other project packages it may import
ALLOWED = {
    "pathway": set(),
    "solver": {"pathway"},
    "cohorts": {"pathway"},
    "api": {"solver", "pathway", "cohorts"},
    "bench": {"api", "solver", "pathway", "cohorts"},
}
PROJECT = set(ALLOWED) | {"tests"}


def imported_packages(package: str) -> dict[str, list[str]]:
    """Project package -> the files of ``package`` that import it."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in PROJECT and top != package:
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_inside_it(package):
    outward = {other: files for other, files in imported_packages(package).items() if other not in ALLOWED[package]}
    assert outward == {}
