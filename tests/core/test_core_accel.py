"""accelerate underneath the training loops: settings refused cleanly, data-parallel equals one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tenfold.core.accel import accelerator, check_mixed_precision, device_summary, local_slice, peak_memory
from tenfold.core.errors import InputError
from tenfold.core.io import Checkpoint
from tenfold.core.jobs import Job, job_lines, select_job

SCRIPT = Path(__file__).parent / "scripts" / "ddp_linear.py"


@pytest.mark.parametrize("mode,why", [("fp16", "needs a CUDA GPU"), ("int8", "must be one of")])
def test_precision_the_hardware_lacks_is_one_line(mode, why):
    with pytest.raises(InputError, match=why):
        check_mixed_precision(mode, torch.device("cpu"))


def test_bf16_on_a_cpu_without_bf16_instructions_is_refused_naming_the_cpu():
    cap = torch.backends.cpu.get_cpu_capability()
    if "AVX512" in cap.upper():
        assert check_mixed_precision("bf16", torch.device("cpu")) == "bf16"
    else:
        with pytest.raises(InputError, match=cap):
            check_mixed_precision("bf16", torch.device("cpu"))


def test_local_slice_splits_a_global_batch_evenly_and_refuses_uneven_ones():
    class Two:
        num_processes, process_index = 2, 1

    assert local_slice(list(range(8)), Two()) == [4, 5, 6, 7]
    assert local_slice(list(range(8))) == list(range(8))
    with pytest.raises(InputError, match="divisible by 2"):
        local_slice(list(range(7)), Two())


def test_single_process_accelerator_is_the_plain_cpu_path():
    acc = accelerator()
    assert acc.num_processes == 1 and acc.is_main_process and acc.device.type == "cpu"
    used, how = peak_memory(torch.device("cpu"))
    assert used > 10 * 2**20 and how == "peak RSS"
    assert device_summary().startswith("device cpu, float32, peak memory")


def test_job_list_is_stable_and_an_index_out_of_range_names_the_range():
    jobs = [Job("a", {"n": 1}), Job("b", {"n": 2})]
    assert [json.loads(line)["id"] for line in job_lines(jobs)] == ["a", "b"]
    assert select_job(jobs, 1).id == "b"
    with pytest.raises(InputError, match="0 to 1"):
        select_job(jobs, 2)


def test_checkpoint_is_written_by_the_main_process_only(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    Checkpoint(tmp_path / "c").save({"step": 1})
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())
    monkeypatch.setenv("RANK", "0")
    Checkpoint(tmp_path / "c").save({"step": 1})
    assert Checkpoint(tmp_path / "c").load()["step"] == 1


def test_two_cpu_processes_match_one_process_on_the_same_global_batch(tmp_path, one_and_two_processes):
    one, two = one_and_two_processes(SCRIPT)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    # equal weights alone would not catch every process training on the whole batch (the same average)
    assert a["examples"] == b["examples"] == 30 * 16
    assert torch.allclose(torch.tensor(a["weights"]), torch.tensor(b["weights"]), atol=1e-10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]  # one writer per run


def test_the_process_group_is_torn_down_before_exit(tmp_path):
    """A launch whose work finished must not abort at exit with gloo threads alive (seen as SIGABRT in about one
    two-process run in eight before the teardown): `_end_distributed` destroys the group, and is a no-op without one."""
    import torch.distributed as dist

    from tenfold.core.accel import _end_distributed

    _end_distributed()  # no group: nothing to do
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    _end_distributed()
    assert not dist.is_initialized()
