"""The competitors, behind the same interface as LIBER.

* backbone alone: `DIN` / `DCNv2` / `DeepFM` with no dense field (see backbones.py);
* KAR-style (Xi et al. 2023): one LLM summary of the user's *whole* history, recomputed whenever the
  history grows (here: at each partition boundary, so it sees exactly what LIBER sees), encoded and
  passed through an adapter MLP into the backbone (KAR's hybrid-expert adaptor simplified to one MLP);
  what refreshing it costs at other schedules (lazy, per update) is counted in `freshness.py`;
* LIBER without the cascade: `learn_interests(..., cascade=False)`, each partition summarised alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from tenfold.liber.fusion import Adapter
from tenfold.liber.interests import (
    TEMPLATES,
    InterestRecord,
    ItemCatalog,
    PromptTemplate,
    ask,
    summary_prompt,
)
from tenfold.liber.llm import TextGenerator
from tenfold.liber.partition import Partition


def kar_summaries(partitions: Mapping[str, list[Partition]], generator: TextGenerator, catalog: ItemCatalog,
                  profiles: Mapping[str, str] | None = None, template: PromptTemplate = TEMPLATES["movie"],
                  fields: bool = True, retries: int = 2) -> dict[str, list[InterestRecord]]:
    """For each user and each n = 1..P, one summary of the whole history in partitions 0..n-1."""
    profiles = profiles or {}
    keys, prompts = [], []
    for u, parts in partitions.items():
        history = []
        for p in parts:
            history += list(p.behaviors)
            keys.append((u, p))
            prompts.append(summary_prompt(template, profiles.get(u, ""), None, history, catalog, heading="Whole",
                                          fields=fields))
    answers = ask(generator, prompts, [f"user {u} whole history to partition {p.pid}" for u, p in keys], fields, retries)
    out: dict[str, list[InterestRecord]] = {u: [] for u in partitions}
    for (u, p), (text, got) in zip(keys, answers, strict=True):
        out[u].append(InterestRecord(p.pid, p.closed_at, text, got))
    return out


class KARCTR(nn.Module):
    """Backbone + KAR: the whole-history vector of the latest usable summary, through an adapter MLP."""

    def __init__(self, backbone: nn.Module, d_in: int):
        super().__init__()
        self.backbone = backbone
        self.adapter = Adapter(d_in, backbone.embed.d)
        self.missing = nn.Parameter(torch.zeros(backbone.embed.d))

    def forward(self, batch: dict) -> torch.Tensor:
        has = batch["kar_mask"].unsqueeze(-1)
        v = torch.where(has, self.adapter(batch["kar_vec"]), self.missing)
        return self.backbone(batch, dense=v.unsqueeze(1))
