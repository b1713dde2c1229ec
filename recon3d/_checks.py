"""Shape checks that bind named dimensions across arguments.

>>> import torch
>>> dims = check_shapes("f()", verts=(torch.zeros(2, 5, 3), "B V 3"), faces=(torch.zeros(4, 3), "F 3"))
>>> dims["B"], dims["V"], dims["F"]
(2, 5, 4)
"""

from __future__ import annotations

from typing import Any

import torch

from .errors import Recon3DError, ShapeError

__all__ = ["check_shapes", "check_float", "check_device"]


def check_shapes(where: str, **named: tuple[Any, str]) -> dict[str, int]:
    """Check that each tensor matches a spec like ``"B V 3"`` and that named dims agree.

    Args:
        where: name of the calling function, used in the message (e.g. ``"rasterize()"``).
        **named: ``arg_name=(tensor, spec)``. A spec token is an integer (exact size), a name
            (bound on first use, must match afterwards) or ``*`` (any size).

    Returns:
        The bound dimension sizes.

    Raises:
        ShapeError: naming the argument, the expected spec and the actual shape.
    """
    bound: dict[str, int] = {}
    for arg, (t, spec) in named.items():
        if t is None:
            continue
        toks = spec.split()
        shape = tuple(t.shape)
        if len(shape) != len(toks):
            raise ShapeError(f"{where}: {arg} must be ({', '.join(toks)}), got {shape}")
        for tok, size in zip(toks, shape, strict=True):
            if tok == "*":
                continue
            if tok.isdigit():
                if size != int(tok):
                    raise ShapeError(f"{where}: {arg} must be ({', '.join(toks)}), got {shape}")
                continue
            if tok in bound and bound[tok] != size:
                raise ShapeError(
                    f"{where}: {arg} must be ({', '.join(toks)}) with {tok}={bound[tok]} "
                    f"(from an earlier argument), got {shape}"
                )
            bound[tok] = size
    return bound


def check_float(where: str, **named: torch.Tensor | None) -> None:
    """Raise :class:`ShapeError` unless every given tensor is floating point."""
    for arg, t in named.items():
        if t is not None and not torch.is_floating_point(t):
            raise ShapeError(f"{where}: {arg} must be a floating-point tensor, got {t.dtype}")


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a :class:`torch.device` that exists here (``None`` stays ``None``).

    Raises:
        Recon3DError: not a device name (``"banana"``), or a device this machine or torch build
            does not have (``"cuda"`` without CUDA, ``"cuda:3"`` with one GPU, ``"mps"`` off macOS).

    >>> check_device("cpu"), check_device(None)
    (device(type='cpu'), None)
    """
    if device is None:
        return None
    if isinstance(device, torch.device):
        d = device
    else:
        try:
            d = torch.device(str(device))
        except (RuntimeError, ValueError, TypeError):
            raise Recon3DError(f"device {device!r} is not a torch device (use cpu, cuda, cuda:N or mps)") from None
    if d.type == "cpu":
        return d
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise Recon3DError(f"device {device!r}: CUDA is not available here (a CPU-only torch build or no "
                               "visible GPU); use --device cpu")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise Recon3DError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return d
    if d.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise Recon3DError(f"device {device!r}: MPS is not available here; use --device cpu")
        return d
    raise Recon3DError(f"device {device!r}: recon3d runs on cpu, cuda or mps, not {d.type}")
