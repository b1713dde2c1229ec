"""Second-order spherical-harmonics (SH) Lambertian shading, as in Deep3DFaceRecon.

The 9 real SH basis functions of bands 0-2 are pre-multiplied by the Lambertian kernel's
band factors (Ramamoorthi & Hanrahan 2001), with the constants and sign conventions of
Deep3DFaceRecon (Deng et al. 2019, ``models/bfm.py``: ``compute_color``), the reconstruction
network the thesis (seeds/001, section 5) builds on::

    a0 = pi,  a1 = 2 pi / sqrt(3),  a2 = 2 pi / sqrt(8)
    c0 = 1 / sqrt(4 pi),  c1 = sqrt(3) / sqrt(4 pi),  c2 = 3 sqrt(5) / sqrt(12 pi)

    Y = [ a0 c0,
         -a1 c1 ny,   a1 c1 nz,  -a1 c1 nx,
          a2 c2 nx ny,  -a2 c2 ny nz,  a2 c2 / (2 sqrt 3) (3 nz^2 - 1),
         -a2 c2 nx nz,   a2 c2 / 2 (nx^2 - ny^2) ]

``shading = Y @ light`` per colour channel, ``light (B, 9, 3)``; the colour is
``albedo * shading``. Deep3DFaceRecon expresses normals in an OpenGL-like camera frame
(+X right, +Y up, +Z towards the viewer) and adds 0.8 to the first coefficient of every channel
before shading; :func:`~recon3d.render.render_mesh` converts its OpenCV camera-frame normals with
:func:`recon3d.conventions.opencv_to_opengl_cam` so that Deep3DFaceRecon's ``gamma`` (plus 0.8
on index 0) can be used as ``light`` unchanged. A light that gives uniform shading 1 is
``light[:, 0, :] = 1 / (a0 c0) = sqrt(4 pi) / pi`` and zeros elsewhere (:func:`ambient_light`).
"""

from __future__ import annotations

import math

import torch

from ..errors import ShapeError

__all__ = ["sh_basis", "sh_shading", "ambient_light", "SH_CONSTANTS"]

_A0, _A1, _A2 = math.pi, 2.0 * math.pi / math.sqrt(3.0), 2.0 * math.pi / math.sqrt(8.0)
_C0, _C1, _C2 = 1.0 / math.sqrt(4.0 * math.pi), math.sqrt(3.0) / math.sqrt(4.0 * math.pi), 3.0 * math.sqrt(5.0) / math.sqrt(12.0 * math.pi)

#: The Deep3DFaceRecon constants (a: Lambertian band factors, c: SH normalisation).
SH_CONSTANTS = {"a0": _A0, "a1": _A1, "a2": _A2, "c0": _C0, "c1": _C1, "c2": _C2}


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 Lambertian-weighted SH basis values of unit normals.

    Args:
        normals: ``(..., 3)`` unit normals (not renormalised here).

    Returns:
        ``(..., 9)``.

    >>> [round(v, 4) + 0.0 for v in sh_basis(torch.tensor([0.0, 0.0, 1.0])).tolist()]
    [0.8862, 0.0, 1.7725, 0.0, 0.0, 0.0, 1.4012, 0.0, 0.0]
    """
    if normals.shape[-1] != 3:
        raise ShapeError(f"sh_basis(): normals must be (..., 3), got {tuple(normals.shape)}")
    nx, ny, nz = normals.unbind(-1)
    k1 = _A1 * _C1
    k2 = _A2 * _C2
    return torch.stack(
        [
            torch.full_like(nx, _A0 * _C0),
            -k1 * ny,
            k1 * nz,
            -k1 * nx,
            k2 * nx * ny,
            -k2 * ny * nz,
            k2 * 0.5 / math.sqrt(3.0) * (3.0 * nz * nz - 1.0),
            -k2 * nx * nz,
            k2 * 0.5 * (nx * nx - ny * ny),
        ],
        dim=-1,
    )


def sh_shading(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Irradiance (per RGB channel) of unit normals under SH lighting.

    Args:
        normals: ``(B, ..., 3)`` unit normals, in the frame the light is expressed in.
        light: ``(B, 9, 3)`` SH coefficients per colour channel.

    Returns:
        ``(B, ..., 3)`` shading; multiply by the albedo to get the colour.

    Raises:
        ShapeError: when the batch sizes or trailing dims disagree.

    >>> n = torch.tensor([[[0.0, 0.0, 1.0]]])
    >>> [round(v, 5) for v in sh_shading(n, ambient_light(1))[0, 0].tolist()]
    [1.0, 1.0, 1.0]
    """
    if light.dim() != 3 or light.shape[1:] != (9, 3):
        raise ShapeError(f"sh_shading(): light must be (B, 9, 3), got {tuple(light.shape)}")
    if normals.dim() < 2 or normals.shape[-1] != 3 or normals.shape[0] != light.shape[0]:
        raise ShapeError(
            f"sh_shading(): normals must be (B, ..., 3) with B={light.shape[0]}, got {tuple(normals.shape)}"
        )
    Y = sh_basis(normals)
    B = normals.shape[0]
    out = Y.reshape(B, -1, 9) @ light.to(Y.dtype)
    return out.reshape(normals.shape)


def ambient_light(batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> torch.Tensor:
    """``(B, 9, 3)`` SH light giving uniform shading 1 (``light[:, 0] = 1 / (a0 c0)``).

    >>> round(float(ambient_light(1)[0, 0, 0]), 4)
    1.1284
    """
    light = torch.zeros(batch, 9, 3, dtype=dtype, device=device)
    light[:, 0, :] = 1.0 / (_A0 * _C0)
    return light
