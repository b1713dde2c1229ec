"""Locate packaged and user-supplied asset files.

``resolve(name, path=None)`` looks, in order, at the explicit ``path``, then ``$RECON3D_ASSETS/name``,
then the project's ``assets/`` folder. Known assets are checked against the sha256 recorded in
``assets/manifest.json`` (written by the tools that build them and mirrored in ``assets/README.md``).
Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

from .errors import AssetError

__all__ = ["resolve", "asset_dir", "manifest", "sha256_file", "read_weights"]


def asset_dir() -> Path:
    """The packaged ``assets/`` folder (next to the ``recon3d`` package in a source/editable install)."""
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "assets", here / "_assets"):
        if cand.is_dir():
            return cand
    return here.parent / "assets"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest() -> dict:
    """The parsed ``assets/manifest.json`` (``{}`` if absent)."""
    p = asset_dir() / "manifest.json"
    if not p.is_file():
        return {}
    return json.loads(p.read_text())


@lru_cache(maxsize=32)
def _checked(path: str, expected: str, mtime: float) -> None:
    got = sha256_file(Path(path))
    if got != expected:
        raise AssetError(
            f"{path}: sha256 {got[:12]}... does not match the manifest ({expected[:12]}...). The file is corrupt or "
            "was replaced; restore it from the repository (git checkout -- assets/) or rebuild it with the tool named "
            "in assets/README.md."
        )


def resolve(name: str, path: str | os.PathLike | None = None, *, check: bool = True) -> Path:
    """Find asset ``name``. An explicit ``path`` wins; then ``$RECON3D_ASSETS``; then ``assets/``.

    Raises:
        AssetError: the file is missing everywhere, or its checksum does not match the manifest.
    """
    tried = []
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise AssetError(f"{p}: file not found (given explicitly for asset {name!r}).")
    env = os.environ.get("RECON3D_ASSETS")
    if env:
        p = Path(env).expanduser() / name
        tried.append(str(p))
        if p.is_file():
            return p
    p = asset_dir() / name
    tried.append(str(p))
    if p.is_file():
        entry = manifest().get(name)
        if check and entry and "sha256" in entry:
            _checked(str(p), entry["sha256"], p.stat().st_mtime)
        return p
    raise AssetError(
        f"asset {name!r} not found (looked in: {', '.join(tried)}). It ships with recon3d's repository in assets/; "
        "install recon3d from a source checkout (`pip install -e .`) or set RECON3D_ASSETS to a folder holding it."
    )


def read_weights(path: str | os.PathLike, fmt: str, what: str) -> tuple[dict, dict]:
    """Read a recon3d safetensors weights file without executing code.

    Args:
        path: the file.
        fmt: the ``format`` tag its metadata must carry.
        what: how to name the network in errors (e.g. ``"landmark regressor"``).

    Returns:
        ``(state_dict with floating tensors as float32, metadata dict)``.

    Raises:
        AssetError: missing file, not a safetensors file, or another format tag.
    """
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise AssetError(f"{what} weights not found: {p}")
    try:
        with safe_open(str(p), framework="pt") as f:
            md = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise AssetError(f"{p}: not a safetensors file ({e})") from e
    if md.get("format") != fmt:
        raise AssetError(f"{p}: not a recon3d {what} (format {md.get('format')!r}, expected {fmt!r})")
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, md
