"""Import rules of recon3d.morphable (docs/ARCHITECTURE.md), checked on the source with ast: the runtime
model imports neither the builder nor the fitting/texture/detect/edit/reconstruct layers, and the
converters import only numpy/scipy/torch/stdlib (h5py lazily), the core, ops, io and the runtime model."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "recon3d" / "morphable"
CORE = ("errors", "_checks", "conventions", "assets", "camera")


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (module level or inside functions)."""
    pkg = list(path.relative_to(PKG.parents[1]).parts[:-1])  # the package the module is in
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            if not node.module:  # from . import x
                out.update(f"{mod}.{a.name}" for a in node.names)
    return out


RUNTIME = sorted(PKG.glob("*.py"))
CONVERT = sorted((PKG / "convert").glob("*.py"))


@pytest.mark.parametrize("path", RUNTIME, ids=lambda p: p.name)
def test_runtime_model_imports_no_builder_nor_higher_layers(path):
    bad = ("recon3d.morphable.build", "recon3d.fitting", "recon3d.texture", "recon3d.detect", "recon3d.edit",
           "recon3d.reconstruct")
    hits = sorted(m for m in _imports(path) if m.startswith(bad))
    assert not hits, f"{path.name} imports {hits}"


@pytest.mark.parametrize("path", CONVERT, ids=lambda p: p.name)
def test_converters_import_only_the_core_ops_io_and_the_runtime_model(path):
    ok_recon3d = tuple(f"recon3d.{m}" for m in CORE + ("ops", "io")) + ("recon3d.morphable.model",
                                                                         "recon3d.morphable.convert")
    bad = []
    for m in _imports(path):
        top = m.split(".")[0]
        if top == "recon3d":
            if m != "recon3d" and not m.startswith(ok_recon3d):
                bad.append(m)
        elif top not in sys.stdlib_module_names and top not in ("numpy", "scipy", "torch", "h5py"):
            bad.append(m)
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_checker_resolves_relative_imports():
    names = _imports(PKG / "convert" / "bfm.py")
    assert "recon3d.errors" in names and "recon3d.morphable.model" in names
    assert "recon3d.morphable.convert.assemble" in names
