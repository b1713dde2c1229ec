"""The one checkpoint registry of :mod:`recon3d.nn`: safetensors weights with their configuration in
the metadata, a format check, device placement, and the process-wide cache.

Each network module describes its file format with a :class:`NetworkSpec` (its ``nn.Module``
class, the ``format`` tag written into the metadata, how to name it in errors, the shipped asset)
and loads and saves through :func:`load_network` / :func:`save_network`; :data:`recon3d.nn.NETWORKS`
lists them by name. A file holds fp16 (by default) tensors and three metadata strings:
``format``, ``config`` (JSON keyword arguments of the class) and ``meta`` (JSON, e.g. the training
summary). Reading goes through :func:`recon3d.assets.read_weights` (no pickle, no code executed);
shipped assets are sha256-checked by :func:`recon3d.assets.resolve`.

Cached loads (the default) go through :func:`recon3d._cache.cached` under
``("nn", name, path, device)``: the same object is returned on every call, so callers must not
train or modify it (pass ``cached=False`` for a private copy, e.g. to fine-tune).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._cache import cached as _cached
from ..assets import read_weights, resolve
from ..errors import AssetError

__all__ = ["NetworkSpec", "load_network", "save_network"]


@dataclass(frozen=True)
class NetworkSpec:
    """How one kind of network is stored.

    Attributes:
        name: short registry name (``"landmarks"``, ``"occluder"``).
        cls: the ``nn.Module`` class; it is built as ``cls(**config)`` and must keep that config
            in a ``config`` attribute (a JSON-able dict).
        format: the ``format`` tag in the file's metadata (checked on load).
        what: how errors name it (``"landmark regressor"``).
        asset: file name of the shipped weights in ``assets/`` (loaded when no path is given).
    """

    name: str
    cls: type[nn.Module]
    format: str
    what: str
    asset: str | None = None


def save_network(net: nn.Module, path: str | os.PathLike, spec: NetworkSpec, *, meta: dict | None = None,
                 half: bool = True) -> None:
    """Write ``net`` as safetensors (floating tensors in fp16 unless ``half=False``) with its
    configuration, ``spec.format`` and ``meta`` in the metadata."""
    from safetensors.torch import save_file

    sd = {k: (v.half() if half and v.is_floating_point() else v).contiguous().cpu() for k, v in net.state_dict().items()}
    md = {"format": spec.format, "config": json.dumps(net.config), "meta": json.dumps(meta or {})}
    save_file(sd, str(path), metadata=md)


def _read(spec: NetworkSpec, path: Path, device: torch.device | str | None) -> tuple[nn.Module, dict]:
    sd, md = read_weights(path, spec.format, spec.what)
    cfg = json.loads(md["config"])
    net = spec.cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise AssetError(f"{path}: weights do not match the configuration {cfg}: {e}") from e
    net.eval()
    if device is not None:
        net.to(device)
    return net, json.loads(md.get("meta", "{}"))


def load_network(spec: NetworkSpec, path: str | os.PathLike | None = None, *, device: torch.device | str | None = None,
                 cached: bool = True) -> tuple[Any, dict]:
    """Load a :func:`save_network` file: ``(net in eval mode on device, meta)``.

    Args:
        spec: which network (e.g. :data:`recon3d.nn.landmarks.LANDMARK_NET`).
        path: the file; default ``spec.asset`` from ``assets/`` (checksum-verified).
        device: where to put the network (default: the CPU).
        cached: return the process-wide shared copy (built on the first call; see the module doc)
            rather than a fresh one.

    Raises:
        AssetError: missing file, not safetensors, another format, or weights that do not match
            the configuration.
    """
    if not cached:
        return _read(spec, _path(spec, path), device)
    key = ("nn", spec.name, str(path), str(device))
    return _cached(key, lambda: _read(spec, _path(spec, path), device))


def _path(spec: NetworkSpec, path: str | os.PathLike | None) -> Path:
    if path is not None:
        return Path(path)
    if spec.asset is None:
        raise AssetError(f"{spec.what}: no weights file given and none is shipped")
    return resolve(spec.asset)
