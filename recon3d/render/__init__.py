"""recon3d.render"""
