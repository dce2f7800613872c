"""RELIFE and baselines: masks, permutation equivariance, ablation switches, losses, empty history."""

from __future__ import annotations

import math

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.relife.baselines import DLCM, MIR, PRM, BaselineConfig, PersonalVector, SetRank, clicked_sequence
from tenfold.relife.model import Relife, RelifeConfig, info_nce, pointwise_loss
from tenfold.relife.train import build_model

B, H, L, NI, NC = 4, 3, 6, 30, 5


def make_batch(seed: int = 0, valid: int = 4) -> dict:
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[:, :valid] = True
    hist_mask = torch.zeros(B, H, L, dtype=torch.bool)
    hist_mask[:, 1:, :valid] = True  # the oldest history slot is empty
    hist_mask[0] = False  # user 0 has no history at all
    return {
        "items": torch.randint(2, NI, (B, L), generator=g) * mask,
        "cats": torch.randint(2, NC, (B, L), generator=g) * mask,
        "scores": torch.randn(B, L, generator=g) * mask,
        "mask": mask,
        "hist_items": torch.randint(2, NI, (B, H, L), generator=g) * hist_mask,
        "hist_cats": torch.randint(2, NC, (B, H, L), generator=g) * hist_mask,
        "hist_scores": torch.randn(B, H, L, generator=g) * hist_mask,
        "hist_labels": (torch.rand(B, H, L, generator=g) < 0.4).float() * hist_mask,
        "hist_mask": hist_mask,
        "target": (torch.rand(B, L, generator=g) < 0.4).float() * mask,
    }


CFG = RelifeConfig(n_items=NI, n_cats=NC, list_len=L, history_lists=H, dim=8, heads=2)
BASE = BaselineConfig(NI, NC, L, H, dim=8, heads=2)
MODELS = {"relife": lambda: Relife(CFG), "prm": lambda: PRM(BASE), "dlcm": lambda: DLCM(BASE),
          "setrank": lambda: SetRank(BASE), "mir": lambda: MIR(BASE)}


@pytest.mark.parametrize("name", list(MODELS))
def test_padded_candidates_and_history_do_not_change_real_outputs(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    a = make_batch(0)
    b = {k: v.clone() for k, v in a.items()}
    g = torch.Generator().manual_seed(9)
    b["items"] = torch.where(a["mask"], a["items"], torch.randint(2, NI, (B, L), generator=g))
    b["scores"] = torch.where(a["mask"], a["scores"], torch.randn(B, L, generator=g))
    b["hist_items"] = torch.where(a["hist_mask"], a["hist_items"], torch.randint(2, NI, (B, H, L), generator=g))
    b["hist_labels"] = torch.where(a["hist_mask"], a["hist_labels"], torch.ones(B, H, L))
    with torch.no_grad():
        (la, _), (lb, _) = model(a), model(b)
    assert torch.allclose(la[a["mask"]], lb[a["mask"]], atol=1e-5)
    assert torch.isfinite(la).all()


@pytest.mark.parametrize("name", ["setrank", "mir", "relife-no-position"])
def test_set_models_are_permutation_equivariant_in_the_candidates(name):
    torch.manual_seed(1)
    model = (Relife(RelifeConfig(**{**CFG.__dict__, "use_position": False})) if name == "relife-no-position"
             else MODELS[name]()).eval()
    a = make_batch(1, valid=L)
    perm = torch.randperm(L)
    b = {**a, **{k: a[k][:, perm] for k in ("items", "cats", "scores", "mask", "target")}}
    with torch.no_grad():
        assert torch.allclose(model(a)[0][:, perm], model(b)[0], atol=1e-5)


def test_prm_reads_the_initial_order_so_it_is_not_equivariant():
    torch.manual_seed(2)
    model = PRM(BASE).eval()
    a = make_batch(2, valid=L)
    perm = torch.arange(L).flip(0)
    b = {**a, **{k: a[k][:, perm] for k in ("items", "cats", "scores", "mask")}}
    with torch.no_grad():
        assert not torch.allclose(model(a)[0][:, perm], model(b)[0], atol=1e-4)


def test_history_off_ignores_the_history_and_clicks_only_ignores_unclicked_items():
    torch.manual_seed(3)
    a = make_batch(3)
    other = {**a, "hist_items": ((a["hist_items"] + 1) % (NI - 2) + 2) * a["hist_mask"]}
    unclicked = a["hist_mask"] & (a["hist_labels"] < 0.5)
    swap_unclicked = {**a, "hist_items": torch.where(unclicked, (a["hist_items"] + 3) % (NI - 2) + 2, a["hist_items"])}
    full, off, clicks = (Relife(RelifeConfig(**{**CFG.__dict__, **kw})).eval()
                         for kw in ({}, {"use_history": False}, {"hybrid": False}))
    with torch.no_grad():
        assert torch.allclose(off(a)[0], off(other)[0])
        assert not torch.allclose(full(a)[0], full(other)[0])
        assert torch.allclose(clicks(a)[0], clicks(swap_unclicked)[0], atol=1e-6)
        assert not torch.allclose(full(a)[0], full(swap_unclicked)[0])


def test_ablations_switch_modules_off():
    meta = {"n_items": NI, "n_cats": NC}
    assert build_model("relife-no-cpe", meta, L, H).cpe is None
    assert build_model("relife-no-cl", meta, L, H).config.cl_weight == 0
    assert not build_model("relife-no-history", meta, L, H).config.use_history
    assert not build_model("relife-clicks-only", meta, L, H).config.hybrid
    with pytest.raises(InputError, match="unknown model"):
        build_model("relife-xl", meta, L, H)


def test_contrastive_loss_enters_only_in_training_and_is_finite_with_empty_history():
    torch.manual_seed(4)
    model = Relife(CFG)
    batch = make_batch(4)
    model.train()
    _, extra = model(batch)
    assert extra.item() > 0 and torch.isfinite(extra)
    extra.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    assert model(batch)[1].item() == 0.0
    label = Relife(RelifeConfig(**{**CFG.__dict__, "contrastive": "label"})).train()
    assert torch.isfinite(label(batch)[1])


def test_pointwise_loss_equals_a_float64_reference_including_ips_targets_above_one():
    logits = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    target = torch.tensor([[2.5, 0.0, 1.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False]])
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    ref = (-(2.5 * math.log(sig(0.3)) + (1 - 2.5) * math.log(1 - sig(0.3))) - math.log(1 - sig(-1.2))) / 2
    assert math.isclose(pointwise_loss(logits, target, mask).item(), ref, rel_tol=1e-12)


def test_info_nce_matches_a_dense_reference_and_skips_rows_without_history():
    g = torch.Generator().manual_seed(5)
    a, p = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    valid = torch.tensor([True, True, False, True, True])
    an, pn = (x[valid] / x[valid].norm(dim=1, keepdim=True) for x in (a, p))
    sim = an @ pn.T / 0.2
    ref = -(torch.diag(sim) - torch.logsumexp(sim, 1)).mean()
    assert torch.allclose(info_nce(a, p, 0.2, valid), ref)
    assert info_nce(a, p, 0.2, torch.tensor([True, False, False, False, False])).item() == 0.0


def test_prm_personal_vector_is_frozen_while_prm_trains():
    torch.manual_seed(6)
    personal = PersonalVector(BASE)
    model = PRM(BASE, personal)
    before = {k: v.clone() for k, v in personal.state_dict().items()}
    opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=0.1)
    batch = make_batch(6)
    logits, _ = model.train()(batch)
    pointwise_loss(logits, batch["target"], batch["mask"]).backward()
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in personal.state_dict().items())


def test_mir_reads_the_clicked_history_in_time_order():
    batch = make_batch(7)
    idx, mask, age = clicked_sequence(batch)
    for b in range(B):
        clicked = (batch["hist_mask"][b] & (batch["hist_labels"][b] > 0.5)).flatten().nonzero().flatten()
        assert idx[b][mask[b]].tolist() == clicked.tolist()
        assert age[b][mask[b]].tolist() == [H - int(i) // L for i in clicked]


def test_bad_config_is_rejected():
    with pytest.raises(InputError, match="contrastive"):
        RelifeConfig(n_items=3, n_cats=3, contrastive="both")
    with pytest.raises(InputError, match="heads"):
        RelifeConfig(n_items=3, n_cats=3, dim=10, heads=3)
