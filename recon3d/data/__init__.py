"""recon3d.data: training-data generators and splits. Offline only: nothing at inference time imports
this package.

* :mod:`recon3d.data.poses`: large-pose views synthesized from an annotated photo (300W-LP recipe).
* :mod:`recon3d.data.landmark_set`: the synthesized set on disk (writing, reading, augmentation).
* :mod:`recon3d.data.occluders`: face crops, random occluder shapes and their pasting.
* :mod:`recon3d.data.splits`: deterministic hash splits and seeds.
"""
