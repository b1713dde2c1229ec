"""recon3d.nn: inference networks only (landmark regressor, occluder segmenter; generators, restorers and
refiners next) and the one checkpoint registry. No data generation, no training code.

* :mod:`recon3d.nn.landmarks`: :class:`~recon3d.nn.landmarks.LandmarkNet` and the
  :class:`~recon3d.nn.landmarks.LandmarkRegressor` wrapper (crop, passes, flip test).
* :mod:`recon3d.nn.occluder`: :class:`~recon3d.nn.occluder.OccluderNet` and
  :func:`~recon3d.nn.occluder.occluder_probability`.
* :mod:`recon3d.nn.blocks`: the layers later networks share: :class:`~recon3d.nn.blocks.GatedConv2d`,
  :class:`~recon3d.nn.blocks.GatedResBlock`, :class:`~recon3d.nn.blocks.SelfAttention2d`,
  :class:`~recon3d.nn.blocks.ConditionalInstanceNorm2d`, :class:`~recon3d.nn.blocks.CrossAttention2d`,
  :class:`~recon3d.nn.blocks.MMRB` and :func:`~recon3d.nn.blocks.conv_block`.
* :mod:`recon3d.nn.registry`: safetensors save/load with the configuration in the metadata, the
  format check and the cache (:func:`~recon3d.nn.registry.load_network`).
* :mod:`recon3d.nn.preprocess`: :func:`~recon3d.nn.preprocess.standardise`, the input normalisation.

:data:`NETWORKS` names every network's :class:`~recon3d.nn.registry.NetworkSpec`, e.g.
``load_network(NETWORKS["occluder"])`` loads the shipped occluder weights.
"""

from .landmarks import LANDMARK_NET
from .occluder import OCCLUDER_NET
from .registry import NetworkSpec, load_network, save_network

#: every network of recon3d by registry name
NETWORKS: dict[str, NetworkSpec] = {s.name: s for s in (LANDMARK_NET, OCCLUDER_NET)}

__all__ = ["NETWORKS", "NetworkSpec", "load_network", "save_network"]
