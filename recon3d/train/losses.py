"""Training losses on the identity network (:mod:`recon3d.nn.identity`, dlib's face recognition
ResNet in PyTorch), for generators, restorers and refiners.

* :func:`identity_loss`: the euclidean distance of the two 128-d descriptors, dlib's own metric
  (its network was trained so that the same person lies below 0.6), so the loss reads in the
  units of that threshold; ``metric="cosine"`` gives ``1 - cos`` instead (the ArcFace-style loss).
* :func:`feature_matching_loss`: L1 between channel-normalised intermediate activations
  (:meth:`~recon3d.nn.identity.IdentityNet.features`), our perceptual-loss stand-in. It is **not**
  LPIPS (no learned linear heads, a face network instead of VGG/AlexNet) and is named for what it is.

Inputs are either aligned ``(B, 3, 150, 150)`` chips or ``(B, 3, H, W)`` images with their
chip matrices (:func:`~recon3d.nn.identity.face_chip_transform`); images are cut with the
differentiable :func:`~recon3d.nn.identity.extract_chip`. All are float RGB in [0, 1]. Both losses
return per-sample ``(B,)`` tensors and are differentiable with respect to both inputs (detach the
target yourself). Pass the network in eval mode (e.g. :func:`~recon3d.nn.identity.load_identity_net`
with ``cached=False`` if you might modify it); its parameters should be frozen
(``requires_grad_(False)``) when only the generator trains.
"""

from __future__ import annotations

from ..nn.identity import feature_distance, identity_distance

__all__ = ["identity_loss", "feature_matching_loss"]

#: the identity loss: :func:`recon3d.nn.identity.identity_distance` (one implementation, shared with
#: GAN inversion at inference time)
identity_loss = identity_distance
#: the feature-matching loss: :func:`recon3d.nn.identity.feature_distance`
feature_matching_loss = feature_distance


