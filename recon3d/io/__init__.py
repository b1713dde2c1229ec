"""recon3d.io"""
