"""recon3d.mesh"""
