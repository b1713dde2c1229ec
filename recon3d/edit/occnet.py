"""Deprecated: use :mod:`recon3d.nn.occluder` (the network, inference, its crop) and
:mod:`recon3d.data.occluders` (training shapes and pasting). This alias goes away in the next release."""

from .._deprecated import moved_module

_NET = "recon3d.nn.occluder"
__all__, __getattr__ = moved_module(__name__, f"{_NET} and recon3d.data.occluders", {
    **{n: _NET for n in ("OccluderNet", "OCCLUDER_ASSET", "OCC_FORMAT", "CROP_SIZE", "CROP_SCALE", "DEROLL_MIN_DEG",
                         "save_occluder_net", "load_occluder_net", "occluder_probability", "crop_box", "crop", "uncrop",
                         "roll_angle")},
    "standardise": f"{_NET}:occluder_input",
    "shape_bank": "recon3d.data.occluders", "paste_occluders": "recon3d.data.occluders",
})
