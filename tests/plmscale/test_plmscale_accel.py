"""The sweep's training loop under data parallelism (issue 26): two gloo processes on CPU give the rows
of one process, for CLM and for MLM (whose processes hold different numbers of masked tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "ddp_sweep_run.py"


@pytest.mark.slow  # three interpreters importing torch and transformers (~30-90 s on the shared machine)
def test_two_cpu_processes_give_the_rows_of_one_process(tmp_path, one_and_two_processes):
    one, two = one_and_two_processes(SCRIPT)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    for objective in ("clm", "mlm"):
        assert a[objective]["steps"] == b[objective]["steps"] and a[objective]["tokens"] == b[objective]["tokens"]
        # float32 all-reduce sums in another order than one process: equal to round-off, not bit for bit
        assert b[objective]["loss"] == pytest.approx(a[objective]["loss"], abs=1e-5), objective
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]  # one writer per run
