"""The competitors, behind the same interface as LIBER.

* backbone alone: `DIN` / `DCNv2` / `DeepFM` with no dense field (see backbones.py);
* KAR-style (Xi et al. 2023): one LLM summary of the user's *whole* history, recomputed whenever the
  history grows (here: at each partition boundary, so it sees exactly what LIBER sees), encoded and
  passed through an adapter MLP into the backbone (KAR's hybrid-expert adaptor simplified to one MLP);
* LIBER without the cascade: `learn_interests(..., cascade=False)`, each partition summarised alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from tenfold.liber.fusion import Adapter
from tenfold.liber.interests import TEMPLATES, ItemCatalog, PromptTemplate, summary_prompt
from tenfold.liber.llm import TextGenerator
from tenfold.liber.partition import Partition


def kar_summaries(partitions: Mapping[str, list[Partition]], generator: TextGenerator, catalog: ItemCatalog,
                  profiles: Mapping[str, str] | None = None, template: PromptTemplate = TEMPLATES["movie"],
                  ) -> dict[str, list[str]]:
    """For each user and each n = 1..P, one summary of the whole history in partitions 0..n-1."""
    profiles = profiles or {}
    keys, prompts = [], []
    for u, parts in partitions.items():
        history = []
        for p in parts:
            history += list(p.behaviors)
            keys.append(u)
            prompts.append(summary_prompt(template, profiles.get(u, ""), None, history, catalog, heading="Whole"))
    texts = generator.generate(prompts)
    out: dict[str, list[str]] = {u: [] for u in partitions}
    for u, t in zip(keys, texts, strict=False):
        out[u].append(t)
    return out


def kar_recompute_prompt(user: str, behaviors, catalog: ItemCatalog, profile: str = "",
                         template: PromptTemplate = TEMPLATES["movie"]) -> str:
    """The one prompt KAR needs after any history growth: the whole history again."""
    return summary_prompt(template, profile, None, list(behaviors), catalog, heading="Whole")


class KARCTR(nn.Module):
    """Backbone + KAR: the whole-history vector of the latest usable summary, through an adapter MLP."""

    def __init__(self, backbone: nn.Module, d_text: int):
        super().__init__()
        self.backbone = backbone
        self.adapter = Adapter(d_text, backbone.embed.d)
        self.missing = nn.Parameter(torch.zeros(backbone.embed.d))

    def forward(self, batch: dict) -> torch.Tensor:
        has = batch["kar_mask"].unsqueeze(-1)
        v = torch.where(has, self.adapter(batch["kar_vec"]), self.missing)
        return self.backbone(batch, dense=v.unsqueeze(1))
