"""Real small images from installed packages: scikit-learn's bundled 8x8 handwritten digits.

The digits (1,797 images, 10 classes, grey levels 0..16) ship inside the scikit-learn wheel
(sklearn/datasets/data/digits.csv.gz), a copy of the UCI "Optical Recognition of Handwritten Digits"
test set (licence CC BY 4.0). scikit-learn's other image sets (Olivetti faces, LFW) download at run
time, so they are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.data.registry import DatasetSpec, register_dataset

LEVELS = 17  # grey levels 0..16


@dataclass(frozen=True)
class ImageSet:
    """images: (n, 1, H, W) float in [0, 1]; levels: same shape, integer grey levels; labels: (n,)."""

    name: str
    images: torch.Tensor
    levels: torch.Tensor
    labels: torch.Tensor
    n_levels: int
    n_classes: int

    def split(self, valid_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
        """A seeded, class-stratified train/validation split."""
        if not 0 < valid_fraction < 1:
            raise InputError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
        g = torch.Generator().manual_seed(seed)
        valid_idx = []
        for c in range(self.n_classes):
            idx = (self.labels == c).nonzero().flatten()
            idx = idx[torch.randperm(len(idx), generator=g)]
            valid_idx.append(idx[: max(1, round(len(idx) * valid_fraction))])
        valid = torch.cat(valid_idx).sort().values
        mask = torch.ones(len(self.labels), dtype=torch.bool)
        mask[valid] = False
        train = mask.nonzero().flatten()
        return self._take(train), self._take(valid)

    def _take(self, idx: torch.Tensor) -> ImageSet:
        return ImageSet(self.name, self.images[idx], self.levels[idx], self.labels[idx], self.n_levels, self.n_classes)


def load_digits(size: int = 8) -> ImageSet:
    """scikit-learn's digits; `size` 8 (native) or 16 (nearest-neighbour upsampled, for patch models)."""
    from sklearn.datasets import load_digits as sk_digits

    if size not in (8, 16):
        raise InputError(f"digits size must be 8 or 16, got {size}")
    bunch = sk_digits()
    levels = torch.from_numpy(bunch.images.astype(np.int64)).unsqueeze(1)  # (n, 1, 8, 8)
    if size == 16:
        levels = levels.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    images = levels.float() / (LEVELS - 1)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return ImageSet("digits", images, levels, labels, LEVELS, 10)


register_dataset(DatasetSpec(
    name="digits", source="installed package", size="1,797 images, 8x8, 17 grey levels, 10 classes",
    licence="CC BY 4.0 (UCI optdigits), shipped in scikit-learn", loader="tenfold.data.images:load_digits",
    description="scikit-learn's bundled handwritten digits; the image set for the image AR model and the zoo DiT."))
