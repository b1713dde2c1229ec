"""recon3d.train: the one resumable training loop (:mod:`recon3d.train.loop`) and the recipes that feed
it (:mod:`recon3d.train.recipes`). Offline only: nothing at inference time imports this package.
"""
