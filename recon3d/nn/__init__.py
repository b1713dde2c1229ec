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
* :mod:`recon3d.nn.identity`: :class:`~recon3d.nn.identity.IdentityNet`, a PyTorch port of dlib's face
  recognition ResNet (the ArcFace role) read from dlib's own ``.dat``, and dlib's face chip
  (:func:`~recon3d.nn.identity.face_chip_transform`, differentiable
  :func:`~recon3d.nn.identity.extract_chip`).
* :mod:`recon3d.nn.restoration`: :class:`~recon3d.nn.restoration.FaceRestorer` (seed 002's MMRB codec with the
  StyleGAN2 prior, seed 004's reference-guided variant, the plain U-Net baseline) and
  :func:`~recon3d.nn.restoration.restore_aligned`.
* :mod:`recon3d.nn.inpaint`: :class:`~recon3d.nn.inpaint.Inpainter`, the learned de-occlusion fill (thesis 5.3.4:
  gated residual encoder-decoder with self-attention, the 3DMM render as input).
* :mod:`recon3d.nn.mtcnn`: MTCNN's P-Net, R-Net and O-Net (:class:`~recon3d.nn.mtcnn.MTCNNNets`; weights
  converted from facenet-pytorch's, MIT); the cascade is :mod:`recon3d.detect.mtcnn_backend`.
* :mod:`recon3d.nn.registry`: safetensors save/load with the configuration in the metadata, the
  format check and the cache (:func:`~recon3d.nn.registry.load_network`).
* :mod:`recon3d.nn.preprocess`: :func:`~recon3d.nn.preprocess.standardise`, the input normalisation.

:data:`NETWORKS` names every network's :class:`~recon3d.nn.registry.NetworkSpec`, e.g.
``load_network(NETWORKS["occluder"])`` loads the shipped occluder weights. ``NETWORKS["identity"]``
ships no weights (dlib's installed ``.dat`` is the source): load it with
:func:`~recon3d.nn.identity.load_identity_net`, or convert it once with
:func:`~recon3d.nn.identity.convert_dlib_dat` and load that file with ``load_network``.
"""

from .dcgan import DCGAN_D, DCGAN_G
from .identity import IDENTITY_NET
from .inpaint import INPAINTER
from .landmarks import LANDMARK_NET
from .latent_pose import LATENT_POSE
from .mtcnn import MTCNN_NETS
from .occluder import OCCLUDER_NET
from .registry import NetworkSpec, load_network, save_network
from .restoration import REF_SR, RESTORER
from .rotate_refine import ROTATION_REFINER
from .stylegan2 import STYLEGAN2_D, STYLEGAN2_G
from .uv_generator import UV_GENERATOR

#: every network of recon3d by registry name
NETWORKS: dict[str, NetworkSpec] = {s.name: s for s in (LANDMARK_NET, OCCLUDER_NET, IDENTITY_NET, STYLEGAN2_G,
                                                          STYLEGAN2_D, DCGAN_G, DCGAN_D, RESTORER, REF_SR,
                                                          MTCNN_NETS, INPAINTER, ROTATION_REFINER,
                                                          UV_GENERATOR, LATENT_POSE)}

__all__ = ["NETWORKS", "NetworkSpec", "load_network", "save_network"]
