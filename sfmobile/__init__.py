"""sfmobile: Stable-Diffusion-class text-to-image models taken onto phones, the SnapFusion way."""

__version__ = "0.1.0"
