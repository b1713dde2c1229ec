"""The layer rules of docs/ARCHITECTURE.md, checked on recon3d's own import graph.

The graph is read with :mod:`ast` from the source files (every ``import``, at module level or inside a
function; imports under ``if TYPE_CHECKING:`` are type hints and do not count), so the test needs
nothing but the tree itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "recon3d"

# (module prefix, layer); the longest matching prefix wins. Keep in step with docs/ARCHITECTURE.md.
LAYERS: dict[str, int] = {
    "recon3d._version": 0, "recon3d._deprecated": 0, "recon3d.errors": 0, "recon3d._checks": 0, "recon3d._cache": 0,
    "recon3d.conventions": 0, "recon3d.assets": 0, "recon3d.camera": 0,
    "recon3d.structures": 1, "recon3d.ops": 1, "recon3d.io": 1,
    "recon3d.render": 2, "recon3d.morphable": 2,
    "recon3d.fitting": 3, "recon3d.texture": 3, "recon3d.nn": 3,
    "recon3d.detect": 4,
    "recon3d.reconstruct": 5,
    "recon3d.edit": 6,
    "recon3d.batch": 7,
    "recon3d.data": 8, "recon3d.train": 8, "recon3d.morphable.build": 8,
    "recon3d": 9,  # the package facade (lazy top-level names)
}
# Deprecated aliases: re-export new homes for one release; they sit above everything.
ALIASES = ("recon3d.mesh", "recon3d.regressor", "recon3d.morphable.loaders", "recon3d.edit.occnet", "recon3d.edit.warp",
           "recon3d.texture.poisson")
# Imports between packages of one layer that the architecture allows (importer prefix, imported prefix).
SAME_LAYER_OK = {
    ("recon3d.io", "recon3d.structures"), ("recon3d.io", "recon3d.ops"), ("recon3d.structures", "recon3d.ops"),
    ("recon3d.morphable", "recon3d.render"),
    ("recon3d.texture", "recon3d.fitting"), ("recon3d.texture", "recon3d.nn"),
    ("recon3d.train", "recon3d.data"),
    ("recon3d.morphable.build", "recon3d.data"),
}
# Edges that exist only inside deprecated 0.1 conveniences (they import when called, warn, and go away in
# recon3d 0.3): Reconstruction.mesh/params/overlay/save delegate to the layers that own that work.
DEPRECATED_EDGES = {
    ("recon3d.structures.reconstruction", "recon3d.io.export"),
    ("recon3d.structures.reconstruction", "recon3d.reconstruct"),
}
# Packages held to a stricter rule than their layer.
ONLY = {"recon3d.nn": ("recon3d.nn", "recon3d.ops", "recon3d._version", "recon3d._deprecated", "recon3d.errors", "recon3d._checks",
                       "recon3d._cache", "recon3d.conventions", "recon3d.assets", "recon3d.camera")}


def _modules() -> dict[str, Path]:
    mods = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            t = node.test
            name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                for sub in node.body:
                    skip.update(id(n) for n in ast.walk(sub))
    return skip


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def target(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    for mod, path in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skip = _type_checking_nodes(tree)
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")
                    base = base[: len(base) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                names = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            for n in names:
                if n.startswith("recon3d"):
                    t = target(n)
                    if t and t != mod and (mod, t) not in DEPRECATED_EDGES:
                        graph[mod].add(t)
    return graph


def _prefix(mod: str, table) -> str:
    best = ""
    for p in table:
        if (mod == p or mod.startswith(p + ".")) and len(p) > len(best):
            best = p
    return best


def _is_alias(mod: str) -> bool:
    return any(mod == a or mod.startswith(a + ".") for a in ALIASES)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, targets in graph.items():
        if _is_alias(a):
            continue
        pa = _prefix(a, LAYERS)
        for b in sorted(targets):
            pb = _prefix(b, LAYERS)
            if _is_alias(b):
                bad.append(f"{a} imports the deprecated alias {b}")
                continue
            if pa in ONLY and not _prefix(b, ONLY[pa]):
                bad.append(f"{a} ({pa} may import only {', '.join(ONLY[pa])}) imports {b}")
            la, lb = LAYERS[pa], LAYERS[pb]
            if lb > la:
                bad.append(f"{a} (layer {la}) imports {b} (layer {lb})")
            elif lb == la and la > 0 and pa != pb and _prefix(pa, [pb]) != pb and (pa, pb) not in SAME_LAYER_OK:
                bad.append(f"{a} imports {b}: both layer {la}, not an allowed pair")
    return bad


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_graph_reader_sees_real_edges():
    g = import_graph()
    assert "recon3d.errors" in g["recon3d.camera"]
    assert "recon3d.render.rasterizer" in g["recon3d.render.raster"]


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_dependencies_point_down():
    bad = layer_violations(import_graph())
    assert not bad, "\n".join(bad)


def test_checker_catches_an_upward_import_and_a_cycle():
    g = {"recon3d.ops.x": {"recon3d.edit.y"}, "recon3d.edit.y": {"recon3d.ops.x"}}
    assert layer_violations(g) == ["recon3d.ops.x (layer 1) imports recon3d.edit.y (layer 6)"]
    assert find_cycle(g) == ["recon3d.edit.y", "recon3d.ops.x", "recon3d.edit.y"]
    assert layer_violations({"recon3d.nn.a": {"recon3d.render.b"}})  # nn: core and ops only


def test_every_module_has_a_layer():
    missing = [m for m in _modules() if not _prefix(m, LAYERS)]
    assert not missing


@pytest.mark.parametrize("api", ["recon3d.reconstruct", "recon3d.edit"])
def test_inference_api_loads_no_training_code(api):
    code = (f"import sys, {api}; bad = sorted(m for m in sys.modules if m.startswith(('recon3d.train', "
            "'recon3d.data', 'recon3d.morphable.build'))); print(bad); raise SystemExit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=ROOT.parent)
    assert r.returncode == 0, r.stdout + r.stderr
