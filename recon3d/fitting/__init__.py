"""recon3d.fitting"""
