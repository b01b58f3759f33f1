"""The house's layering, checked statically from the source (no module is imported).

Rooms, lowest first: ``morphable_models`` (nothing from ``fitter``), ``fitter.geometry`` (nothing
else from ``fitter``), ``fitter.losses`` (may use ``fitter.geometry``), then the rest of
``fitter``. Every import counts for the rooms, function-level ones included. The package modules'
imports must form no cycle, neither at module level nor counting function-level imports.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fitter", "morphable_models")

#: room -> the project prefixes it may import (anything outside PACKAGES is free)
ALLOWED: Dict[str, Tuple[str, ...]] = {
    "morphable_models": ("morphable_models",),
    "fitter.geometry": ("morphable_models", "fitter.geometry"),
    "fitter.losses": ("morphable_models", "fitter.geometry", "fitter.losses"),
}


def module_files(root: Path = ROOT) -> Dict[str, Tuple[Path, bool]]:
    """Dotted module name -> (file, is package ``__init__``) for every module of PACKAGES."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def imports_of(name: str, path: Path, is_pkg: bool, known: Set[str]) -> List[Tuple[str, bool, int]]:
    """(imported module, at module level, line) for every import statement in the file.

    ``from a import b`` yields ``a.b`` when that is a module, else ``a``; relative imports are
    resolved. Module level = a statement of the module body (including ``if``/``try`` blocks there),
    not inside a function or class.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            nested.update(id(n) for n in ast.walk(node) if n is not node)
    out = []
    for node in ast.walk(tree):
        top = id(node) not in nested
        if isinstance(node, ast.Import):
            out += [(a.name, top, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            if len(subs) < len(node.names):  # some names come from ``base`` itself
                out.append((base, top, node.lineno))
            out += [(sub, top, node.lineno) for sub in subs]
    return out


def project_imports(root: Path = ROOT) -> Dict[str, List[Tuple[str, bool, int]]]:
    """Module -> its imports of PACKAGES modules (see :func:`imports_of`)."""
    files = module_files(root)
    known = set(files)
    return {m: [i for i in imports_of(m, p, pkg, known) if i[0].split(".")[0] in PACKAGES]
            for m, (p, pkg) in files.items()}


def room_of(module: str) -> str:
    for room in sorted(ALLOWED, key=len, reverse=True):
        if module == room or module.startswith(room + "."):
            return room
    return ""


def _inside(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layering_violations(graph) -> List[str]:
    bad = []
    for mod, imps in sorted(graph.items()):
        room = room_of(mod)
        if not room:
            continue
        for target, _, line in imps:
            if not any(_inside(target, ok) for ok in ALLOWED[room]):
                bad.append(f"{mod}:{line} imports {target} (the {room} room may import only {ALLOWED[room]})")
    return bad


def _enclosing(target: str, modules: Set[str]) -> str:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target


def _ancestors(module: str) -> Set[str]:
    """The module and the packages above it (Python runs those before the module anyway)."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def import_cycles(graph) -> List[List[str]]:
    """Cycles of module-level imports: Tarjan's strongly connected components of more than one
    module, each sorted. A module importing a package above it is not an edge (Python has run that
    package's ``__init__`` before the module anyway), so an ``__init__`` re-exporting its modules
    is not a cycle."""
    modules = set(graph)
    edges = {m: sorted({_enclosing(t, modules) for t, top, _ in imps if top} - {""} - _ancestors(m))
             for m, imps in graph.items()}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return out


@pytest.fixture(scope="module")
def graph():
    return project_imports()


def test_the_scan_sees_the_packages(graph):
    assert {"morphable_models.model", "fitter.geometry.raster", "fitter.losses.prdl", "fitter.cli"} <= set(graph)
    assert ("morphable_models.model", True) in {(t, top) for t, top, _ in graph["morphable_models.parts"]}
    # function-level imports are seen too
    assert any(not top for imps in graph.values() for _, top, _ in imps)


def test_lower_rooms_import_nothing_above(graph):
    assert layering_violations(graph) == []


def test_no_import_cycles(graph):
    assert import_cycles(graph) == []


def test_no_import_cycles_through_lazy_imports(graph):
    """Counting function-level imports as well: a lazy import back into a module's own importer
    (a registry importing the backends that import it) is a cycle too."""
    eager = {m: [(t, True, line) for t, _, line in imps] for m, imps in graph.items()}
    assert import_cycles(eager) == []


def test_the_checks_catch_a_violation(tmp_path):
    """A planted upward import and a planted cycle are both reported."""
    for pkg in ("morphable_models", "fitter", "fitter/geometry"):
        (tmp_path / pkg).mkdir(parents=True, exist_ok=True)
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "morphable_models" / "a.py").write_text("def f():\n    from fitter.errors import X\n")
    (tmp_path / "fitter" / "errors.py").write_text("X = 1\n")
    (tmp_path / "fitter" / "geometry" / "g.py").write_text("from fitter import errors\n")
    (tmp_path / "fitter" / "p.py").write_text("from fitter import q\n")
    (tmp_path / "fitter" / "q.py").write_text("from . import p\n")
    g = project_imports(tmp_path)
    bad = layering_violations(g)
    assert any(b.startswith("morphable_models.a:2 imports fitter.errors") for b in bad)
    assert any(b.startswith("fitter.geometry.g:1 imports fitter") for b in bad)
    assert import_cycles(g) == [["fitter.p", "fitter.q"]]


def test_tests_share_helpers_through_conftest_only():
    """A test module imports no other test module (shared helpers live in tests/conftest.py)."""
    tests = Path(__file__).resolve().parent
    names = {p.stem for p in tests.glob("test_*.py")}
    bad = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name}:{node.lineno} imports {m}" for m in mods
                    if m.split(".")[0] in names or m.startswith("tests.")]
    assert bad == []
