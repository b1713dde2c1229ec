"""recon3d.train: the one resumable training loop, the losses, and a recipe per task. Offline only."""
