"""Sample quality: FID and precision/recall in the digit classifier's feature space, class accuracy of
class-conditional samples, and the block moments behind the FID intervals (`experiment.fid_interval`).

"FID" here is the Fréchet distance between Gaussians fitted to the 128-d penultimate features of the
`digit-classifier` zoo CNN (trained here on the digits' training split), not Inception-v3 features:
the numbers are comparable with each other, not with published ImageNet FIDs. The real images are a
held-out split that trained nothing (not the DiT, not the gates, not the classifier).

Intervals resample *blocks* of generated images: block j holds the j-th sample of every class, drawn
from the same starting noise for every sampler, so two samplers are compared on the same units. FID is
not a mean over images, so each block carries its feature moments (count, sum, sum of outer products)
and a resample's FID is computed from the summed moments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tenfold.core.errors import InputError

PR_NEIGHBOURS = 3  # k of the k-NN manifolds (Kynkäänniemi et al. 2019 use k = 3)


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


def gaussian_stats(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (n, d) features, in float64."""
    f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, float)
    if f.ndim != 2 or len(f) < 2:
        raise InputError(f"features must be (n >= 2, d), got {tuple(f.shape)}")
    return f.mean(0), np.cov(f, rowvar=False)


@dataclass
class FeatureReference:
    """The real images' features: their Gaussian (with C^{1/2} precomputed) and k-NN radii."""

    features: np.ndarray  # (n, d) float64
    mu: np.ndarray
    cov: np.ndarray
    sqrt_cov: np.ndarray
    radii: np.ndarray  # distance of each real feature to its k-th nearest real neighbour

    @classmethod
    def from_features(cls, features: torch.Tensor | np.ndarray) -> FeatureReference:
        f = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, float)
        mu, cov = gaussian_stats(f)
        vals, vecs = np.linalg.eigh(cov)
        sqrt_cov = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
        return cls(f, mu, cov, sqrt_cov, knn_radii(f))

    def fid(self, mu: np.ndarray, cov: np.ndarray) -> float:
        """frechet_distance(mu, cov, self.mu, self.cov), with tr (C C_ref)^{1/2} = sum sqrt eig(R C R), R = C_ref^{1/2}."""
        m = self.sqrt_cov @ cov @ self.sqrt_cov
        eig = np.linalg.eigvalsh((m + m.T) / 2).clip(min=0)
        diff = mu - self.mu
        return float(diff @ diff + np.trace(cov) + np.trace(self.cov) - 2 * np.sqrt(eig).sum())


def knn_radii(features: np.ndarray, k: int = PR_NEIGHBOURS) -> np.ndarray:
    """Distance of each row to its k-th nearest other row."""
    d = _distances(features, features)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(sq.clip(min=0))


def precision_recall_units(generated: np.ndarray, reference: FeatureReference) -> tuple[np.ndarray, np.ndarray]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), per unit: for each generated sample, is it
    inside the real k-NN manifold (precision = the mean); for each real image, is it inside the generated
    samples' k-NN manifold (recall = the mean)."""
    d = _distances(generated, reference.features)  # (generated, real)
    precision = (d <= reference.radii[None, :]).any(1).astype(float)
    recall = (d <= knn_radii(generated)[:, None]).any(0).astype(float)
    return precision, recall


def block_moments(features: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """One row per block: [count, sum of features (d), upper triangle of the sum of outer products]."""
    f = np.asarray(features, np.float64)
    iu = np.triu_indices(f.shape[1])
    rows = []
    for b in np.unique(blocks):
        part = f[blocks == b]
        rows.append(np.concatenate([[len(part)], part.sum(0), (part.T @ part)[iu]]))
    return np.stack(rows)


def moments_stats(rows: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance from summed block moments."""
    total = rows.sum(0)
    n = total[0]
    mu = total[1: 1 + dim] / n
    second = np.zeros((dim, dim))
    second[np.triu_indices(dim)] = total[1 + dim:]
    second = second + np.triu(second, 1).T
    return mu, (second - n * np.outer(mu, mu)) / (n - 1)


@dataclass
class Judge:
    """The digit classifier as feature extractor and accuracy judge, with the held-out images' reference."""

    classifier: torch.nn.Module
    reference: FeatureReference
    image_shape: tuple[int, ...]

    @classmethod
    @torch.no_grad()
    def from_images(cls, classifier: torch.nn.Module, real_images: torch.Tensor) -> Judge:
        classifier = classifier.eval()
        return cls(classifier, FeatureReference.from_features(classifier.features(real_images)),
                   tuple(real_images.shape[1:]))

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> np.ndarray:
        if tuple(images.shape[1:]) != self.image_shape:
            raise InputError(f"generated images have shape {tuple(images.shape[1:])} but the real images have "
                             f"{self.image_shape}: sample at the real images' size")
        return self.classifier.features(images.float().cpu()).double().numpy()

    @torch.no_grad()
    def score(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        """FID against the real images, precision/recall, and accuracy w.r.t. the requested classes; images in [0, 1]."""
        feats = self.features(images)
        logits = self.classifier.head(torch.from_numpy(feats).float())
        correct = (logits.argmax(-1) == labels.cpu()).double().numpy()
        precision, recall = precision_recall_units(feats, self.reference)
        return {"fid": self.reference.fid(*gaussian_stats(feats)), "precision": float(precision.mean()),
                "recall": float(recall.mean()), "class_acc": float(correct.mean()),
                "_units": {"features": feats, "correct": correct, "precision": precision, "recall": recall}}

