"""dlib's face chip, reproduced: where the identity network looks (``get_face_chip_details`` +
``extract_image_chip`` of dlib's ``interpolation.h``), differentiable with respect to the image.

:func:`face_chip_transform` places the 150x150 chip from 68 (or 5) landmarks, :func:`extract_chip`
samples it (with dlib's pyramid reduction of large faces), :func:`aligned_chip_matrix` places it on
a face aligned to recon3d's template without detection. Used by :mod:`recon3d.nn.identity`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapeError
from ..ops.align import TEMPLATE_68, similarity_transform

__all__ = ["CHIP_SIZE", "CHIP_PADDING", "face_chip_transform", "extract_chip", "aligned_chip_matrix"]

#: side of dlib's face chip (the network's input), pixels
CHIP_SIZE = 150
#: dlib's default chip padding for the descriptor (``compute_face_descriptor``)
CHIP_PADDING = 0.25


# dlib's mean face (interpolation.h, get_face_chip_details): landmarks 17..67 on the unit square
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124, 0.904991, 0.98004,
    0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036, 0.490127, 0.554217, 0.613373, 0.121737,
    0.187122, 0.265825, 0.334606, 0.260918, 0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751,
    0.719335, 0.254149, 0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874, 0.553364, 0.490127,
    0.42689)
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345, 0.587326,
    0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423,
    0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746, 0.784792, 0.824182,
    0.831803, 0.824182)
# the 68-point landmarks dlib aligns on: nose, eyes, outer lip and upper inner lip (no jaw, brows, lower lip)
_CHIP_POINTS_68 = tuple(i for i in range(27, 68) if not (55 <= i <= 59 or 65 <= i <= 67))
# dlib's 5-point template (shape_predictor_5_face_landmarks order: eye corners, nose base)
_TEMPLATE_5 = ((0.8595674595992, 0.2134981538014), (0.6460604764104, 0.2289674387677),
               (0.1205750620789, 0.2137274526848), (0.3340850613712, 0.2290642403242),
               (0.4901123135679, 0.6277975316475))


def face_chip_transform(landmarks, *, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """The 2 x 3 matrix mapping chip pixels ``(u, v, 1)`` to image pixels ``(x, y)`` of dlib's face
    chip (``get_face_chip_details(shape, size, padding)`` + ``extract_image_chip``).

    dlib fits a similarity from its mean face (68 points: the 33 points of nose, eyes and lips
    listed in ``_CHIP_POINTS_68``; 5 points: its 5-point template), padded by ``padding`` on each
    side and scaled to ``size``, to the landmarks; the chip then samples the rotated rectangle of
    side ``size x scale`` around the image of the chip centre; its corners (dlib's rectangles count
    the corner pixels, so they lie ``size x scale - 1`` apart) are chip pixels 0 and ``size - 1``, so
    the sampling step is ``(size x scale - 1) / (size - 1)``.

    Args:
        landmarks: ``(68, 2)`` or ``(5, 2)`` pixels (0-based, pixel centres at integers), or a
            batch ``(N, L, 2)``.
        size: chip side, pixels.
        padding: border around the template, as a fraction of its side (dlib's descriptor: 0.25).

    Returns:
        ``(2, 3)`` (or ``(N, 2, 3)``) float64.

    Raises:
        ShapeError: not 68 or 5 points.

    >>> m = face_chip_transform(np.array(_TEMPLATE_5) * 100 + 10, size=150, padding=0.0)
    >>> bool(np.allclose(m[:, :2], np.eye(2) * 99 / 149))
    True
    """
    lmk = np.asarray(landmarks, dtype=np.float64)
    if lmk.ndim == 3:
        return np.stack([face_chip_transform(p, size=size, padding=padding) for p in lmk])
    if lmk.ndim != 2 or lmk.shape not in ((68, 2), (5, 2)):
        raise ShapeError(f"face_chip_transform(): landmarks must be (68, 2) or (5, 2), got {lmk.shape}")
    if len(lmk) == 68:
        idx = list(_CHIP_POINTS_68)
        tmpl = np.stack([np.take(_MEAN_FACE_X, np.subtract(idx, 17)), np.take(_MEAN_FACE_Y, np.subtract(idx, 17))], 1)
        lmk = lmk[idx]
    else:
        tmpl = np.array(_TEMPLATE_5)
    sim = similarity_transform((padding + tmpl) / (2 * padding + 1) * size, lmk)  # as dlib's find_similarity_transform
    a, t = sim[:2, :2], sim[:2, 2]
    centre = a @ np.array([size / 2, size / 2]) + t
    scale = np.sqrt(abs(np.linalg.det(a)))
    step = a / scale * (size * scale - 1) / (size - 1)  # dlib's rectangle: corners (side - 1) apart
    return np.concatenate([step, (centre - step @ np.full(2, (size - 1) / 2))[:, None]], 1)


_PYR_W = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])


def _pyramid_down(img: torch.Tensor, quantize: bool) -> torch.Tensor:
    """dlib's ``pyramid_down<2>``: the 5 x 5 binomial filter, every other row and column, no border
    (``(H - 3) // 2`` rows); ``quantize`` floors to 8 bits as dlib does for uint8 images."""
    k = (_PYR_W[:, None] * _PYR_W[None, :] / 256.0).to(img)
    out = F.conv2d(img, k.expand(img.shape[1], 1, 5, 5), stride=2, groups=img.shape[1])
    return torch.floor(out * 255.0 + 1e-4) / 255.0 if quantize else out


def extract_chip(images: torch.Tensor, matrices, *, size: int = CHIP_SIZE, pyramid: bool = True,
                 quantize: bool = False) -> torch.Tensor:
    """Differentiable face chips, sampled as dlib's ``extract_image_chip`` does.

    Each chip pixel ``(u, v)`` is sampled bilinearly at ``matrices[n] @ (u, v, 1)`` (pixel centres at
    integer coordinates, i.e. ``grid_sample(align_corners=True)``); a sample whose 2 x 2
    neighbourhood leaves the image is 0, as in dlib. Like dlib, when the chip shrinks its
    rectangle by more than 2x (area ratio above 4) the image is first reduced with dlib's
    ``pyramid_down<2>`` (on the crop around the chip dlib uses, so the pixel grids agree) as often
    as needed, which avoids aliasing.

    Args:
        images: ``(N, 3, H, W)`` float RGB in [0, 1].
        matrices: ``(N, 2, 3)`` chip-to-image matrices (:func:`face_chip_transform`), numpy or torch.
            They are treated as constants (no gradient to the landmarks).
        size: chip side, pixels.
        pyramid: reduce large faces as dlib does (False: plain bilinear sampling of the full image).
        quantize: floor to 8 bits where dlib's uint8 pipeline does (pyramid levels, output); for
            reproducing dlib bit for bit; not differentiable.

    Returns:
        ``(N, 3, size, size)`` chips, same dtype and device as ``images``.

    Raises:
        ShapeError: ``images`` not ``(N, C, H, W)`` or ``matrices`` not ``(N, 2, 3)``.
    """
    m = np.asarray(matrices.detach().cpu() if isinstance(matrices, torch.Tensor) else matrices, dtype=np.float64)
    if images.ndim != 4 or m.shape != (images.shape[0], 2, 3):
        raise ShapeError(f"extract_chip(): images must be (N, C, H, W) and matrices (N, 2, 3), got "
                         f"{tuple(images.shape)} and {m.shape}")
    H, W = images.shape[-2:]
    uv = np.array([[0, 0, 1], [size - 1, 0, 1], [0, size - 1, 1], [size - 1, size - 1, 1]], dtype=np.float64)
    g = np.arange(size, dtype=np.float64)
    grid_uv = np.stack(np.meshgrid(g, g, indexing="xy"), -1).reshape(-1, 2)
    out = []
    for n in range(images.shape[0]):
        mn = m[n]
        # dlib's chip rectangle: corners `side` apart, area (side + 1)^2; rect_down halves `side`
        side = np.sqrt(abs(np.linalg.det(mn[:, :2]))) * (size - 1) / 2
        depth, grow = 0, 2.0
        while pyramid and (side + 1) ** 2 > size * size:
            side /= 2
            depth += 1
            grow = grow * 2 + 2
        corners = uv @ mn.T
        lo = np.maximum(corners.min(0) - grow, 0.0)
        hi = np.minimum(corners.max(0) + grow, [W - 1, H - 1])
        x0, y0 = (int(np.floor(v + 0.5)) for v in lo)
        x1, y1 = (int(np.floor(v + 0.5)) for v in hi)
        if x1 < x0 or y1 < y0:  # the chip lies outside the image
            out.append(images.new_zeros(images.shape[1], size, size))
            continue
        sub = images[n:n + 1, :, y0:y1 + 1, x0:x1 + 1]
        pts = grid_uv @ mn[:, :2].T + mn[:, 2] - [x0, y0]
        for _ in range(depth):
            sub = _pyramid_down(sub, quantize)
            pts = pts / 2.0 - [1.25, 0.75]  # dlib's pyramid_down<2>::point_down
        h, w = sub.shape[-2:]
        if h < 2 or w < 2:
            out.append(images.new_zeros(images.shape[1], size, size))
            continue
        valid = (pts[:, 0] >= 0) & (pts[:, 1] >= 0) & (np.floor(pts[:, 0]) + 1 < w) & (np.floor(pts[:, 1]) + 1 < h)
        gxy = torch.from_numpy(np.stack([2 * pts[:, 0] / (w - 1) - 1, 2 * pts[:, 1] / (h - 1) - 1], -1))
        gxy = gxy.to(images).view(1, size, size, 2)
        chip = F.grid_sample(sub, gxy, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        chip = chip * torch.from_numpy(valid).to(images).view(1, size, size)
        if quantize:
            chip = torch.floor(chip * 255.0 + 1e-4) / 255.0
        out.append(chip)
    return torch.stack(out)


def aligned_chip_matrix(res: int) -> np.ndarray:
    """The ``(2, 3)`` chip matrix of a ``res`` x ``res`` face aligned to recon3d's template
    (:data:`recon3d.ops.align.TEMPLATE_68`: the training faces, the generators' output): dlib's chip
    placed from the template's landmarks, so no detection is needed.

    >>> aligned_chip_matrix(64).shape
    (2, 3)
    """
    return face_chip_transform(TEMPLATE_68.astype(np.float64) * res - 0.5)  # unit square -> pixel centres
