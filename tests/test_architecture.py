"""The import rules of docs/architecture.md, checked on the source and in fresh processes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ("recorderd", "analysis", "brain_nodes")
#: Outside worlds, and the only modules that may import them.
OUTSIDE = {
    "zenoh": {"recorderd.daemon.bus", "brain_nodes.bus"},
    "typer": {"recorderd.daemon.cli", "recorderd.daemon.ctl", "recorderd.daemon.router"}
    | {"analysis.cli", "analysis.export_cli"}
    | {"brain_nodes.cli"},
    "uvloop": {"recorderd.daemon.loops"},
    "pydantic_settings": {"recorderd.daemon.settings"},
    # The analysis reads sessions through recorderd.session; it writes HDF5 exports itself.
    "h5py": {"recorderd.session.*", "analysis.export", "analysis.export.*"},
    "matplotlib": {"analysis.*"},
    "isal": {"recorderd.session.chunks"},
    "zlib_ng": {"recorderd.session.chunks"},
}
#: Which of our packages each package may import (itself always).
ALLOWED = {
    "recorderd.wire": set(),
    "recorderd.session": {"recorderd.wire"},
    "recorderd.core": {"recorderd.wire", "recorderd.session"},
    "recorderd.embed": {"recorderd.wire", "recorderd.session", "recorderd.core"},
    "recorderd.daemon": {"recorderd.wire", "recorderd.session", "recorderd.core"},
    "recorderd": {"recorderd.embed", "recorderd.daemon"},  # __init__ (lazily), __main__
    "analysis": {"recorderd.session", "recorderd.wire"},
    "brain_nodes": {"recorderd.wire"},
}
#: Modules every package may import: the root ``recorderd`` (its ``__version__``, for the
#: CLIs' ``--version``) loads nothing at import (checked below).
ANYONE_MAY = {"recorderd"}


def modules() -> dict[str, Path]:
    found = {}
    for program in PROGRAMS:
        for path in sorted((ROOT / program).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path) -> set[str]:
    """Every module imported anywhere in the file (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def package_of(module: str) -> str:
    """The architecture package a module belongs to (longest entry of ALLOWED)."""
    return max((p for p in ALLOWED if module == p or module.startswith(p + ".")), key=len)


def matches(module: str, patterns: set[str]) -> bool:
    return any(module == p or (p.endswith(".*") and module.startswith(p[:-1])) for p in patterns)


MODULES = modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_only_what_its_package_may(module: str) -> None:
    package = package_of(module)
    allowed = ALLOWED[package] | {package}
    bad = []
    for imported in sorted(imports(MODULES[module])):
        top = imported.split(".")[0]
        if top in PROGRAMS:
            if (
                imported in MODULES
                and imported not in ANYONE_MAY
                and not any(imported == p or imported.startswith(p + ".") for p in allowed)
            ):
                bad.append(f"{imported} (from package {package})")
        elif top in OUTSIDE and not matches(module, OUTSIDE[top]):
            bad.append(f"{imported} (only {sorted(OUTSIDE[top])} may)")
    assert not bad, f"{module} imports: {bad}"


def test_the_rules_cover_every_package() -> None:
    assert {package_of(m) for m in MODULES} == set(ALLOWED)


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import recorderd", {"zenoh", "h5py", "typer", "pydantic"}),
        ("import recorderd.wire", {"zenoh", "h5py", "typer"}),
        ("import recorderd.session.layout", {"zenoh", "h5py", "typer", "pydantic"}),
        ("import recorderd.core.recorder", {"zenoh", "typer"}),
        ("import recorderd.embed", {"zenoh", "typer"}),
        ("import analysis.reader", {"zenoh", "typer"}),
        ("import brain_nodes.node", {"h5py"}),
    ],
)
def test_importing_a_package_does_not_load_what_it_must_not_touch(
    statement: str, absent: set[str]
) -> None:
    code = (
        f"import sys; {statement}; print(sorted(m for m in {sorted(absent)!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]", f"{statement} loaded {out.strip()}"
