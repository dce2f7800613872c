"""MIND's stage 1 on a tiny generated set, as the kill-and-resume and the two-process tests run it.

usage: mind_stage.py LM_DIR DATA_DIR RUN_DIR OUT_JSON STEPS BATCH [--slow]
--slow pauses after every checkpoint, so a test can kill the process in the middle of the stage.
"""

import sys
import time

import torch

from tenfold.core.accel import accelerator
from tenfold.core.io import Checkpoint, atomic_write_json
from tenfold.data.whoiswho import load_ind
from tenfold.ind.model import (
    Features,
    MindConfig,
    MindModel,
    PromptBuilder,
    StageConfig,
    balanced_packs,
    train_stage,
)
from tenfold.ind.pipeline import load_lm


def main(lm_dir: str, data_dir: str, run_dir: str, out: str, steps: int, batch: int, slow: bool) -> None:
    if slow:
        save = Checkpoint.save
        Checkpoint.save = lambda self, state: (save(self, state), time.sleep(0.3))
    data = load_ind(data_dir)
    train = data.split("train")
    cfg = MindConfig(max_profile=6, repeats=2, lora_dropout=0.0, save_every=1,
                     stages=(StageConfig(steps, 1e-2, "cosine", 0.1, batch), StageConfig(1, 1e-3), StageConfig(1, 1e-3)))
    lm, tok = load_lm(lm_dir)
    torch.manual_seed(0)
    model = MindModel(lm, tok, 4, 5, cfg)
    titles = {p: info["title"] for p, info in data.papers.items()}
    packs = balanced_packs(list(train.values()), cfg.packing_size, cfg.repeats, cfg.max_profile, seed=0)
    res = train_stage(model, 1, packs, PromptBuilder(model.tok, titles, cfg, 1024), Features({}, {}), run_dir, seed=0)
    if accelerator().is_main_process:
        atomic_write_json(out, {"losses": res["losses"], "processes": accelerator().num_processes,
                                "weights": {k: v.flatten().tolist() for k, v in sorted(model.trainable_state().items())
                                            if "lora_B" in k}})


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), "--slow" in a)
