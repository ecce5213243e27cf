"""FD-VAE64: a Fréchet distance between two sets of scene pictures, on features of the scene VAE.

FID's Inception network was trained on photographs and cannot be downloaded here; the scene
autoencoder was trained on exactly the pictures being compared, so its encoder is the feature
extractor. Features of one uint8 picture:

    x = picture scaled to [-1, 1]                      (3 x S x S)
    z = vae.encode(x) * scaling_factor                 (latent mean, unit variance on the scenes)
    f = average-pool z to 4 x 4, flatten               (4 channels x 4 x 4 = 64 numbers)

At 64x64 pictures (8x8 latents) each feature averages a 2x2 latent patch, i.e. a 16x16-pixel
region; the pooling keeps the dimension at 64 whatever the picture size, so the 64 x 64
covariance is estimated from a few hundred pictures (FID's 2048 dimensions need tens of
thousands). Distances are only comparable when measured with the same VAE: a table measures
every model with one extractor.

The distance of Gaussians N(m1, S1) and N(m2, S2) fitted to the two feature sets:
    |m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)
computed with symmetric eigendecompositions (numpy.linalg.eigh), which stay real and need no
scipy; tr((S1 S2)^1/2) = tr((S1^1/2 S2 S1^1/2)^1/2) because the two matrices are similar.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sfmobile.errors import InputError
from sfmobile.models.vae import AutoencoderKL

FEATURE_GRID = 4  # latent average-pooled to FEATURE_GRID x FEATURE_GRID
ENCODE_BATCH = 64


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance of the Gaussians fitted (mean, unbiased covariance) to two [N, D] sets."""
    a, b = _check_features(features_a, "features_a"), _check_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"feature sets differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    return gaussian_frechet_distance(
        a.mean(0), np.cov(a, rowvar=False, ddof=1), b.mean(0), np.cov(b, rowvar=False, ddof=1)
    )


def gaussian_frechet_distance(
    mean_a: np.ndarray, cov_a: np.ndarray, mean_b: np.ndarray, cov_b: np.ndarray
) -> float:
    """|m1 - m2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) for symmetric PSD S1, S2 [D, D]."""
    cov_a = np.atleast_2d(np.asarray(cov_a, dtype=np.float64))
    cov_b = np.atleast_2d(np.asarray(cov_b, dtype=np.float64))
    root_a = _psd_sqrt(cov_a)
    middle = root_a @ cov_b @ root_a
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_root = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    offset = np.asarray(mean_a, dtype=np.float64) - np.asarray(mean_b, dtype=np.float64)
    distance = float(offset @ offset) + float(np.trace(cov_a) + np.trace(cov_b)) - 2 * trace_root
    return max(distance, 0.0)  # rounding can leave -1e-12 for identical sets


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ vectors.T


def _check_features(features: np.ndarray, name: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise InputError(f"{name} must be [N >= 2, D], got shape {features.shape}")
    return features


class VaeFeatures:
    """The FD-VAE64 feature extractor: uint8 pictures [N, S, S, 3] -> float64 [N, 64].

    `source` says which VAE it is (a path), for tables and JSON.
    """

    def __init__(self, vae: AutoencoderKL, source: str = "", grid: int = FEATURE_GRID) -> None:
        self.vae = vae.eval()
        self.source = source
        self.grid = grid
        self.dims = vae.config.latent_channels * grid * grid

    @property
    def name(self) -> str:
        return f"FD-VAE{self.dims}"

    def description(self) -> str:
        return (
            f"Fréchet distance of Gaussians fitted to scene-VAE latent means "
            f"(x scaling factor, average-pooled to {self.vae.config.latent_channels}x"
            f"{self.grid}x{self.grid} = {self.dims} dims)"
        )

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
            raise InputError(
                f"pictures must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}"
            )
        scale = self.vae.config.scaling_factor
        chunks = []
        for start in range(0, len(images), ENCODE_BATCH):
            batch = images[start : start + ENCODE_BATCH].astype(np.float32) / 127.5 - 1.0
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
            latents = self.vae.encode(x) * scale
            pooled = F.adaptive_avg_pool2d(latents, self.grid)
            chunks.append(pooled.flatten(1).double().numpy())
        return np.concatenate(chunks)
