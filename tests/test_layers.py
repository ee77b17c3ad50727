"""The package's layering, checked on the source (AST): every import, at module level or inside a
function, points to a lower floor (or stays inside its own package), and no file imports itself
back through a chain of imports. ``docs/architecture.md`` draws the same floors.

Run alone: ``pytest tests/test_layers.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vidssl"

#: Floors, bottom up: a module may import modules of a lower floor or of its own package.
#: Packages on one floor never import each other.
FLOORS: list[tuple[str, ...]] = [
    ("vidssl", "vidssl.errors", "vidssl.security", "vidssl.config", "vidssl.registry", "vidssl.offline",
     "vidssl.provenance"),
    ("vidssl.runtime",),
    ("vidssl.data",),
    ("vidssl.language",),
    ("vidssl.models",),
    ("vidssl.losses",),
    ("vidssl.methods",),
    ("vidssl.train",),
    ("vidssl.eval", "vidssl.track"),
    ("vidssl.report",),
    ("vidssl.demo", "vidssl.bench"),
    ("vidssl.compare",),
    ("vidssl.cli",),
    ("vidssl.__main__",),
]
BASE = FLOORS[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def package_of(module: str) -> str:
    """The floor entry a module belongs to (its package, or the base module itself)."""
    if module in BASE:
        return "base"
    for floor in FLOORS[1:]:
        for pkg in floor:
            if module == pkg or module.startswith(pkg + "."):
                return pkg
    raise AssertionError(f"{module} is on no floor: add it to FLOORS in tests/test_layers.py")


def floor_of(module: str) -> int:
    pkg = package_of(module)
    return 0 if pkg == "base" else next(i for i, f in enumerate(FLOORS) if pkg in f)


def imports_of(module: str, path: Path) -> list[tuple[str, int]]:
    """``(imported vidssl module, line)`` for every import statement of the file; ``from pkg
    import name`` counts as ``pkg.name`` when that is a module."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "vidssl"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "vidssl":
                continue
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in MODULES]
            out += [(t, node.lineno) for t in (subs or [target])]
    return [(t, line) for t, line in out if t in MODULES]


GRAPH = {m: imports_of(m, p) for m, p in MODULES.items()}


def test_every_module_is_on_a_floor():
    for module in MODULES:
        package_of(module)


def test_imports_only_look_down():
    wrong = []
    for module, targets in GRAPH.items():
        for target, line in targets:
            same = package_of(target) == package_of(module)
            if not same and floor_of(target) >= floor_of(module):
                wrong.append(f"{MODULES[module].relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not wrong, "imports that do not look down:\n" + "\n".join(wrong)


@pytest.mark.parametrize("package", ["vidssl.losses", "vidssl.models", "vidssl.methods", "vidssl.eval",
                                     "vidssl.track"])
def test_below_and_beside_the_trainer_nothing_imports_it(package):
    found = [f"{m} imports {t}" for m, ts in GRAPH.items() if package_of(m) == package
             for t, _ in ts if t == "vidssl.train" or t.startswith("vidssl.train.")]
    assert not found, found


def test_no_import_cycles_between_files():
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t, _ in GRAPH[m]:
            if t == m:
                continue
            if state.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_scan_sees_function_level_imports_and_submodules(tmp_path):
    """The checks above are only as good as ``imports_of``: it must see imports inside functions
    and resolve ``from package import submodule``."""
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from vidssl.train import loop\n\nfrom vidssl.data.transforms import functional\n")
    found = {t for t, _ in imports_of("vidssl.x", src)}
    assert found == {"vidssl.train.loop", "vidssl.data.transforms.functional"}
