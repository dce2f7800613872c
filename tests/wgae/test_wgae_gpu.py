"""The CUDA path: WGAE and VGAE training on the GPU give finite results and the same split protocol."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.gpu
def test_wgae_and_vgae_train_on_cuda(small_net, monkeypatch):
    monkeypatch.setenv("TENFOLD_DEVICE", "cuda")
    from tenfold.wgae.baselines import fit_autoencoder
    from tenfold.wgae.evaluate import auc_ap, split_links
    from tenfold.wgae.model import WGAEConfig, fit_wgae

    split = split_links(small_net, 0.05, 0.10, 0)
    for encoder in ("gcn", "gat"):
        m = fit_wgae(small_net, split, WGAEConfig(encoder=encoder, topics=(6, 2), epochs=4, steps_per_epoch=2,
                                                  samples=2, hidden=16, heads=2, decoder="exact"), seed=0)
        assert np.isfinite(m.embedding).all() and 0 <= auc_ap(m.score(split.test_pos), m.score(split.test_neg))[0] <= 1
    m = fit_autoencoder("vgae", small_net, split, 0, steps=10, hidden=16, out=8)
    assert np.isfinite(m.embedding).all()
