"""One tiny CLM and one tiny MLM sweep run (`train_run`), run by the plmscale data-parallel test once as
one process and once under `accelerate launch --num_processes 2` (two gloo processes on CPU)."""

import sys

import torch

from tenfold.core.io import atomic_write_json
from tenfold.core.runtime import is_main_process
from tenfold.data.fasta import generate_proteins
from tenfold.plmscale.sweep import SweepConfig, prepare_data, train_run


def main(out: str) -> None:
    torch.set_num_threads(1)
    cfg = SweepConfig(budgets=(4e6,), shapes=((8, 1),), budget_shapes=(), seq_len=16, batch_size=4, valid_windows=8)
    train, valid = prepare_data(generate_proteins(40, seed=3), cfg)
    rows = {o: train_run(o, 8, 1, 4e6, train, valid, cfg, seed=5) for o in ("clm", "mlm")}
    if is_main_process():
        atomic_write_json(out, {o: {k: r[k] for k in ("loss", "steps", "tokens")} for o, r in rows.items()})


if __name__ == "__main__":
    main(sys.argv[1])
