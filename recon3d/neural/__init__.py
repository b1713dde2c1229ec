"""recon3d.neural"""
