"""Sample quality and cost: FID in the digit classifier's feature space, classifier accuracy of
class-conditional samples, MACs relative to full DDIM, wall time per image, skipped module calls.

"FID" here is the Fréchet distance between Gaussians fitted to the 128-d penultimate features of the
`digit-classifier` zoo CNN (trained here on the same digits), not Inception-v3 features: the numbers
are comparable with each other, not with published ImageNet FIDs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tenfold.core.errors import InputError


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^{1/2}) in float64 (Heusel et al. 2017, eq. 6)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise InputError(f"Fréchet distance of mismatched statistics: means {mu1.shape} vs {mu2.shape}, "
                         f"covariances {cov1.shape} vs {cov2.shape}")
    covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all():  # singular product: regularise as in the reference implementation
        eps = 1e-6 * np.eye(cov1.shape[0])
        covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.trace(covmean))


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (n, d) features, in float64."""
    f = features.detach().cpu().double().numpy()
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"features must be (n >= 2, d), got {tuple(features.shape)}")
    return f.mean(0), np.cov(f, rowvar=False)


@dataclass
class Judge:
    """The digit classifier as FID feature extractor and accuracy judge, with the real images' statistics."""

    classifier: torch.nn.Module
    real_mu: np.ndarray
    real_cov: np.ndarray
    image_shape: tuple[int, ...]

    @classmethod
    @torch.no_grad()
    def from_images(cls, classifier: torch.nn.Module, real_images: torch.Tensor) -> Judge:
        mu, cov = gaussian_stats(classifier.features(real_images))
        return cls(classifier.eval(), mu, cov, tuple(real_images.shape[1:]))

    @torch.no_grad()
    def score(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        """FID against the real images and accuracy w.r.t. the requested classes; images in [0, 1]."""
        if tuple(images.shape[1:]) != self.image_shape:
            raise InputError(f"generated images have shape {tuple(images.shape[1:])} but the real images have "
                             f"{self.image_shape}: sample at the real images' size")
        feats = self.classifier.features(images)
        mu, cov = gaussian_stats(feats)
        acc = (self.classifier.head(feats).argmax(-1).cpu() == labels.cpu()).float().mean().item()
        return {"fid": frechet_distance(mu, cov, self.real_mu, self.real_cov), "class_acc": acc}
