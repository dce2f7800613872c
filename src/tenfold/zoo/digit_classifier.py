"""`digit-classifier`: a small CNN trained here on scikit-learn's digits (train split of
`ImageSet.split(0.2, seed=0)`), used as the feature extractor for FID and as the judge of
class-conditional samples ("FID" here is computed in this classifier's feature space, not Inception's).

Input: (n, 1, H, W) in [0, 1] (any H, W; resized to 8x8 by area averaging). `features` returns the
128-d penultimate activations; `forward` returns class logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.zoo.registry import ZooSpec, register_model, zoo_path


class DigitClassifier(nn.Module):
    def __init__(self, width: int = 32, n_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),  # 4x4
            nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.GELU(),
        )
        self.head = nn.Linear(128, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (8, 8):
            x = nn.functional.adaptive_avg_pool2d(x, 8)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_digit_classifier(folder: Path, seed: int = 0, epochs: int = 30) -> dict:
    from tenfold.data.images import load_digits

    torch.manual_seed(seed)
    train, valid = load_digits().split(0.2, seed=0)
    model = DigitClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train.labels), generator=g)
        for i in range(0, len(order), 64):
            idx = order[i: i + 64]
            x = train.images[idx]
            x = x + 0.05 * torch.randn(x.shape, generator=g)  # light noise: robust to imperfect samples
            loss = nn.functional.cross_entropy(model(x), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(valid.images).argmax(-1) == valid.labels).float().mean().item()
    save_tensors(folder / "model.safetensors", model.state_dict())
    atomic_write_json(folder / "config.json", {"width": 32, "n_classes": 10})
    return {"architecture": "CNN (2 conv + 2 linear)", "parameters": sum(p.numel() for p in model.parameters()),
            "valid_accuracy": round(acc, 4), "epochs": epochs, "data": "digits (sklearn), 80/20 split seed 0"}


def load_digit_classifier(path: str | Path | None = None) -> DigitClassifier:
    """The trained classifier in eval mode (built on first use when no path is given)."""
    folder = Path(path) if path is not None else zoo_path("digit-classifier")
    cfg = read_json(folder / "config.json")
    model = DigitClassifier(cfg["width"], cfg["n_classes"])
    model.load_state_dict(load_tensors(folder / "model.safetensors"))
    return model.eval()


register_model(ZooSpec(
    name="digit-classifier", size="~140k params (CNN)", data="digits (scikit-learn)",
    description="judge and FID feature extractor for models trained on digits.",
    builder=build_digit_classifier,
))
