"""recon3d.io: reading and writing images and landmark files.

See :mod:`recon3d.io.image` and :mod:`recon3d.io.landmarks_file`.
"""

from .image import DEFAULT_MAX_PIXELS, LoadedImage, load_image, save_image, to_uint8
from .landmarks_file import (
    LandmarkFileError,
    load_landmarks,
    read_npy_landmarks,
    read_pts,
    read_txt_landmarks,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "LoadedImage",
    "load_image",
    "save_image",
    "to_uint8",
    "LandmarkFileError",
    "load_landmarks",
    "read_pts",
    "read_txt_landmarks",
    "read_npy_landmarks",
]
