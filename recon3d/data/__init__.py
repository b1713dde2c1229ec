"""recon3d.data: training-data generators and splits. Offline only: nothing at inference time imports
this package.

* :mod:`recon3d.data.poses`: large-pose views synthesized from an annotated photo (300W-LP recipe).
* :mod:`recon3d.data.landmark_set`: the synthesized set on disk (writing, reading, augmentation).
* :mod:`recon3d.data.occluders`: face crops, random occluder shapes and their pasting.
* :mod:`recon3d.data.splits`: deterministic hash splits and seeds.
* :mod:`recon3d.data.faces`: face photo folders (aligned, or detected and aligned to a 68-point
  template) as a cached ``(N, 3, res, res)`` uint8 :class:`~recon3d.data.faces.FaceSet`, and
  :class:`~recon3d.data.faces.FaceBatches` (the batch of a step from ``(seed, step)``).
* :mod:`recon3d.data.augment`: ``to_float`` / ``to_uint8``, ``random_flip_jitter`` and
  ``diff_augment`` (DiffAugment: colour, translation, cutout; differentiable, seeded).
* :mod:`recon3d.data.degrade`: the blind-restoration degradation model of seeds 002 / 004
  (``x = [(y ⊗ k)↓s + n_δ]_JPEG_q``: Gaussian and motion kernels, blur, downsample, noise, JPEG),
  the ``DEGRADE_002`` / ``DEGRADE_004`` presets, ``sample_params`` / ``degrade`` / ``degrade_batch``
  seeded by ``(seed, index)``, and ``build_eval_set`` (a fixed-seed, resumable HQ/LQ set on disk).
* :mod:`recon3d.data.references`: seed 004's reference pool: each training face reconstructed,
  re-posed to a seeded yaw, re-aligned and colour-jittered (``build_reposed_pool``, resumable;
  ``load_reposed_pool``).
"""
