"""Training recipes, one per task, all run by :func:`recon3d.train.loop.run_training`.

* :mod:`recon3d.train.recipes.landmarks`: the landmark regressor on synthesized large-pose views.
* :mod:`recon3d.train.recipes.occluder`: the occluder segmenter on face crops with pasted occluders.
"""
