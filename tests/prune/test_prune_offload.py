"""Models larger than one device: a model split by accelerate's device_map over cpu and disk, or
CPU-offloaded with its weights on the meta device, prunes one layer at a time to the same model as
when it is loaded whole."""

from __future__ import annotations

import pytest
import torch

from tenfold.prune.offload import is_dispatched
from tenfold.prune.pruner import PruneConfig, prune
from tenfold.prune.surgery import layer_sizes, load_pruned, save_pruned

DEVICE_MAP = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk", "model.layers.2": "disk",
              "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}


def _ids(n=6, t=12, seed=0):
    return torch.randint(0, 64, (n, t), generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def dense_dir(tmp_path, tiny_model):
    model = tiny_model("llama", layers=3)
    model.save_pretrained(tmp_path / "dense")
    return tmp_path / "dense"


def _reference(dense_dir, method):
    model = load_pruned(dense_dir)
    prune(model, _ids(), 0.4, method, config=PruneConfig(allocation="standardised", batch_size=4))
    return model


@pytest.mark.parametrize("method", ["numerical", "flap"])
def test_device_map_with_disk_offload_prunes_like_the_whole_model(method, dense_dir, tmp_path):
    model = load_pruned(dense_dir, device_map=DEVICE_MAP, offload_folder=str(tmp_path / "offload"))
    assert model.model.layers[1].self_attn.q_proj.weight.device.type == "meta"
    prune(model, _ids(), 0.4, method, config=PruneConfig(allocation="standardised", batch_size=4))
    assert is_dispatched(model)
    ref = _reference(dense_dir, method)
    assert layer_sizes(model) == layer_sizes(ref)
    ids = _ids(2, 10, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, ref(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
    save_pruned(model, tmp_path / "pruned")
    back = load_pruned(tmp_path / "pruned")
    with torch.no_grad():
        torch.testing.assert_close(back(input_ids=ids).logits, ref(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_cpu_offloaded_model_on_the_meta_device_prunes_like_the_whole_model(dense_dir):
    from accelerate import cpu_offload

    model = load_pruned(dense_dir)
    cpu_offload(model, execution_device=torch.device("cpu"))
    assert all(p.device.type == "meta" for p in model.model.layers.parameters())
    prune(model, _ids(), 0.4, "numerical", config=PruneConfig(allocation="standardised", batch_size=4))
    ref = _reference(dense_dir, "numerical")
    ids = _ids(2, 10, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, ref(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_taylor_on_a_dispatched_model_is_refused(dense_dir, tmp_path):
    from tenfold.core.errors import UnsupportedError

    model = load_pruned(dense_dir, device_map=DEVICE_MAP, offload_folder=str(tmp_path / "offload"))
    with pytest.raises(UnsupportedError, match="device_map"):
        prune(model, _ids(), 0.4, "taylor")
