"""RELIFE and baselines: masks, permutation equivariance, comparison features, InfoNCE, empty history."""

from __future__ import annotations

import math

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.relife.baselines import DLCM, PRM, BaselineConfig, MIRLite, SetRank
from tenfold.relife.model import (
    ComparisonAwarePatternExtractor,
    DisentangledInterestMiner,
    Relife,
    RelifeConfig,
    info_nce,
)

B, H, L, NI, NC = 4, 3, 6, 30, 5


def make_batch(seed: int = 0, valid: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[:, :valid] = True
    hist_mask = torch.zeros(B, H, L, dtype=torch.bool)
    hist_mask[:, 1:, :valid] = True  # the oldest history slot is empty
    hist_mask[0] = False  # user 0 has no history at all
    return {
        "user": torch.arange(B),
        "items": torch.randint(2, NI, (B, L), generator=g) * mask,
        "cats": torch.randint(2, NC, (B, L), generator=g) * mask,
        "scores": torch.randn(B, L, generator=g) * mask,
        "labels": (torch.rand(B, L, generator=g) < 0.4).float() * mask,
        "mask": mask,
        "hist_items": torch.randint(2, NI, (B, H, L), generator=g) * hist_mask,
        "hist_cats": torch.randint(2, NC, (B, H, L), generator=g) * hist_mask,
        "hist_labels": (torch.rand(B, H, L, generator=g) < 0.4).float() * hist_mask,
        "hist_mask": hist_mask,
        "relevance": torch.zeros(B, L),
    }


def relife(**kw) -> Relife:
    torch.manual_seed(0)
    return Relife(RelifeConfig(n_items=NI, n_cats=NC, list_len=L, history_lists=H, dim=8, heads=2, **kw)).eval()


def baselines():
    torch.manual_seed(0)
    cfg = BaselineConfig(NI, NC, L, dim=8, heads=2)
    return [DLCM(cfg).eval(), PRM(cfg).eval(), SetRank(cfg).eval(), MIRLite(cfg).eval()]


def test_masks_make_padded_positions_irrelevant():
    batch = make_batch()
    noisy = dict(batch)
    pad, hpad = ~batch["mask"], ~batch["hist_mask"]
    g = torch.Generator().manual_seed(9)
    noisy["items"] = torch.where(pad, torch.randint(2, NI, (B, L), generator=g), batch["items"])
    noisy["scores"] = torch.where(pad, torch.randn(B, L, generator=g) * 10, batch["scores"])
    noisy["labels"] = torch.where(pad, torch.ones(B, L), batch["labels"])
    noisy["hist_items"] = torch.where(hpad, torch.randint(2, NI, (B, H, L), generator=g), batch["hist_items"])
    noisy["hist_labels"] = torch.where(hpad, torch.ones(B, H, L), batch["hist_labels"])
    for model in [relife(), relife(contrastive="label"), *baselines()]:
        with torch.no_grad():
            a, b = model(batch), model(noisy)
        assert torch.allclose(a[batch["mask"]], b[batch["mask"]], atol=1e-5), type(model).__name__
    m = relife().train()
    assert torch.isclose(m.loss(batch), m.loss(noisy), atol=1e-5)


def _permute(batch: dict, perm: torch.Tensor) -> dict:
    out = dict(batch)
    for k in ("items", "cats", "scores", "labels", "mask"):
        out[k] = batch[k][:, perm]
    return out


def test_setrank_and_position_free_relife_are_permutation_equivariant():
    batch = make_batch(valid=L)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    for model in (baselines()[2], relife(use_position=False)):
        with torch.no_grad():
            assert torch.allclose(model(batch)[:, perm], model(_permute(batch, perm)), atol=1e-5)


def test_prm_depends_on_the_initial_order():
    batch = make_batch(valid=L)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    prm = baselines()[1]
    with torch.no_grad():
        assert not torch.allclose(prm(batch)[:, perm], prm(_permute(batch, perm)), atol=1e-4)


def test_disentangled_miner_is_invariant_to_history_order():
    torch.manual_seed(0)
    miner = DisentangledInterestMiner(8, 2)
    cand, hist = torch.randn(2, 5, 8), torch.randn(2, 12, 8)
    labels, mask = (torch.rand(2, 12) < 0.5).float(), torch.rand(2, 12) < 0.8
    perm = torch.randperm(12)
    a, b = miner(cand, hist, labels, mask), miner(cand, hist[:, perm], labels[:, perm], mask[:, perm])
    assert torch.allclose(a[0], b[0], atol=1e-5) and torch.allclose(a[1], b[1], atol=1e-5)


def test_comparison_features_match_a_float64_loop():
    torch.manual_seed(0)
    cpe = ComparisonAwarePatternExtractor(4, 1).double()
    x = torch.randn(1, 5, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, False]])
    got = cpe.compare(x, mask)[0]
    for i in range(4):
        others = [j for j in range(4) if j != i]
        logits = torch.stack([cpe.phi_q(x[0, i]) @ cpe.phi_k(x[0, j]) / 2.0 for j in others])
        w = torch.softmax(logits, 0)
        ref = sum(w[n] * cpe.diff(x[0, i] - x[0, j]) for n, j in enumerate(others))
        assert torch.allclose(got[i], ref, atol=1e-10)


def test_info_nce_matches_the_formula():
    g = torch.Generator().manual_seed(0)
    a, p = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    valid = torch.tensor([True, True, True])
    an, pn = a / a.norm(dim=1, keepdim=True), p / p.norm(dim=1, keepdim=True)
    s = an @ pn.T / 0.5
    ref = sum(-math.log(math.exp(s[i, i]) / sum(math.exp(s[i, j]) for j in range(3))) for i in range(3)) / 3
    assert math.isclose(float(info_nce(a, p, 0.5, valid)), ref, rel_tol=1e-10)
    assert float(info_nce(a, p, 0.5, torch.tensor([True, False, False]))) == 0.0


@pytest.mark.parametrize("contrastive", ["user", "label"])
def test_users_without_history_and_uniform_labels_give_finite_loss_and_gradients(contrastive):
    batch = make_batch()
    batch["labels"][1] = batch["mask"][1].float()  # an all-one list
    batch["labels"][2] = 0.0  # an all-zero list
    model = relife(contrastive=contrastive, orth_weight=0.1).train()
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():
        assert torch.isfinite(model.eval()(batch)).all()


def test_each_module_can_be_switched_off():
    batch = make_batch()
    for kw in ({"use_icc": False}, {"use_dim": False}, {"use_spm": False}, {"use_cpe": False}, {"cl_weight": 0.0}):
        assert torch.isfinite(relife(**kw).train().loss(batch))


def test_bad_config_is_rejected():
    with pytest.raises(InputError, match="contrastive"):
        RelifeConfig(n_items=3, n_cats=3, contrastive="both")
    with pytest.raises(InputError, match="divisible"):
        RelifeConfig(n_items=3, n_cats=3, dim=10, heads=3)
