"""MIND: a causal LM whose special-token input embeddings are replaced by projected text and graph
embeddings, LoRA-tuned to answer Yes/No at label slots of a multi-query prompt.

Reconstructed from the official code as summarised in the research note (the paper's body text was
not retrievable here):
  prompt   "Identify the abnormal text ...: ### p_1#...#p_n ### Determine whether ... {q_1# ... q_m}"
           p_i = "<graph_token><emb_token>title_i";  q_j = '"<graph_token><emb_token>title_j" belongs to the
           main cluster. <label_token>.'
  splice   e[<emb_token>] = P_text(t_paper), e[<graph_token>] = P_graph(g_(author, paper)),
           P(x) = W_down(SiLU(W_gate x + b_gate) * (W_up x + b_up)) + b_down   (LlamaMLP, hidden 2H)
  loss     cross-entropy of the next-token logits at pos(<label_token>) - 1 against Yes (normal) / No
           (outlier); every other position is ignored (-100)
  score    softmax([logit_Yes, logit_No])[0] at the same position
  stages   1: LoRA on titles only; 2: text projector (LoRA frozen); 3: graph projector (rest frozen)
"""

from __future__ import annotations

import math
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError, UnsupportedError
from tenfold.core.io import Checkpoint, atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.core.progress import progress

LABEL, EMB, GRAPH = "<label_token>", "<emb_token>", "<graph_token>"
SPECIAL_TOKENS = (LABEL, EMB, GRAPH)
INSTRUCTION = ("Identify the abnormal text from the text collection according to the following rules:\n"
               " Here is a collection of paper titles: \n ### {context} \n"
               " Determine whether the following is true and answer 'Yes' or 'No'. {queries}")
QUERY = '"{paper}" belongs to the main cluster. ' + LABEL + "."
STAGE_MODALITIES = {1: (), 2: ("text",), 3: ("text", "graph")}


@dataclass(frozen=True)
class StageConfig:
    """One training stage: optimizer steps, learning rate and schedule, packs per step.

    The official stages (mind/configs/llama3/stage{1,2,3}.json) train for epochs at 1 pack per GPU x
    16 accumulation steps x 8 GPUs = 128 packs per step; here `steps` counts optimizer steps and
    `batch` the packs in each (split over processes under `accelerate launch`)."""

    steps: int
    lr: float
    schedule: str = "constant"  # or "cosine"
    warmup: float = 0.0  # share of the steps with a linear warm-up (stage 1: 0.1)
    batch: int = 1

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch < 1 or not self.lr > 0:
            raise InputError(f"a MIND stage needs steps >= 1, batch >= 1 and lr > 0, got {self}")
        if self.schedule not in ("constant", "cosine") or not 0.0 <= self.warmup < 1.0:
            raise InputError(f"stage schedule must be constant or cosine with warmup in [0, 1), got {self}")


GRAPH_SLOTS = ("title", "label")


@dataclass(frozen=True)
class MindConfig:
    """Defaults from the released Llama-3 configs (mind/configs/llama3/stage*.json, arguments.py)."""

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    packing_size: int = 10
    max_profile: int = 300
    max_length: int = 0  # prompt tokens; 0 = the LM's training context (official: max_source_length 8192)
    max_title_words: int = 0  # 0 = whole titles
    repeats: int = 4  # class-balanced resampling rounds
    # where a query's <graph_token> sits: "title" (official: before the query's title) or "label"
    # (ours: right before its <label_token>, so the label slot reads the graph vector directly)
    graph_slot: str = "title"
    stages: tuple[StageConfig, ...] = field(default_factory=lambda: (
        StageConfig(600, 1e-4, "cosine", 0.1), StageConfig(600, 5e-5), StageConfig(200, 5e-5)))
    save_every: int = 20  # official save_steps / eval_steps

    def __post_init__(self) -> None:
        if self.graph_slot not in GRAPH_SLOTS:
            raise InputError(f"graph_slot must be one of {GRAPH_SLOTS}, got {self.graph_slot!r}")
        if self.packing_size < 1 or self.max_profile < 0 or self.max_length < 0 or self.repeats < 1:
            raise InputError("MindConfig needs packing_size >= 1, repeats >= 1, max_profile >= 0 and max_length >= 0")
        if len(self.stages) != 3:
            raise InputError(f"MIND has three stages, got {len(self.stages)} stage configs")


class SwiGLUProjector(nn.Module):
    """down(SiLU(gate(x)) * up(x)), in -> 2H -> H: MIND's `LlamaMLP` text/graph projector (with biases,
    as its nn.Linear layers have)."""

    def __init__(self, d_in: int, d_model: int):
        super().__init__()
        self.gate = nn.Linear(d_in, 2 * d_model)
        self.up = nn.Linear(d_in, 2 * d_model)
        self.down = nn.Linear(2 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


def answer_token_ids(tok) -> tuple[int, int]:
    """Ids of 'Yes' and 'No': the whole-word tokens when they exist, else the first token of each."""
    ids = []
    for word in ("Yes", "No"):
        i = tok.convert_tokens_to_ids(word)
        if i is None or i == tok.unk_token_id:
            i = tok(word, add_special_tokens=False)["input_ids"][0]
        ids.append(int(i))
    if ids[0] == ids[1]:
        raise UnsupportedError("the tokenizer maps 'Yes' and 'No' to the same first token; MIND needs distinct answers")
    return ids[0], ids[1]


def label_slot_labels(input_ids: torch.Tensor, label_id: int, targets: list[int]) -> torch.Tensor:
    """-100 everywhere except at pos(<label_token>) - 1, which holds the answer token id (in order)."""
    labels = torch.full_like(input_ids, -100)
    pos = (input_ids == label_id).nonzero()
    if len(pos) != len(targets):
        raise InputError(f"{len(pos)} label slots but {len(targets)} targets")
    labels[pos[:, 0], pos[:, 1] - 1] = torch.tensor(targets, dtype=labels.dtype, device=labels.device)
    return labels


class MindModel(nn.Module):
    """A Hugging Face causal LM + LoRA + the two SwiGLU projectors, with the special-token splice."""

    def __init__(self, lm, tok, text_dim: int, graph_dim: int, cfg: MindConfig = MindConfig()):
        from peft import LoraConfig, get_peft_model

        super().__init__()
        self.cfg, self.tok = cfg, tok
        added = tok.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS)})
        if added:
            _resize_with_mean(lm, len(tok))
        self.label_id, self.emb_id, self.graph_id = (int(tok.convert_tokens_to_ids(t)) for t in SPECIAL_TOKENS)
        self.yes_id, self.no_id = answer_token_ids(tok)
        names = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
        targets = [t for t in cfg.lora_targets if t in names]
        if not targets:
            raise UnsupportedError(f"none of the LoRA targets {cfg.lora_targets} are modules of this model; "
                                   "pass lora_targets (e.g. ('query_key_value',) for ChatGLM)")
        lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=targets, task_type="CAUSAL_LM")
        self.lm = get_peft_model(lm, lora)
        d_model = int(lm.config.hidden_size)
        self.text_proj = SwiGLUProjector(text_dim, d_model)
        self.graph_proj = SwiGLUProjector(graph_dim, d_model)
        self.text_dim, self.graph_dim = text_dim, graph_dim

    def splice(self, input_ids: torch.Tensor, text: torch.Tensor | None, graph: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings with the projected vectors written at the special-token positions.

        text (n_emb, text_dim) and graph (n_graph, graph_dim) are in row-major order of the positions.
        """
        emb = self.lm.get_input_embeddings()(input_ids)
        for token, feats, proj in ((self.emb_id, text, self.text_proj), (self.graph_id, graph, self.graph_proj)):
            mask = input_ids == token
            n = int(mask.sum())
            if n == 0:
                continue
            if feats is None or feats.shape[0] != n:
                raise InputError(f"{n} special tokens {self.tok.convert_ids_to_tokens(token)} but "
                                 f"{0 if feats is None else feats.shape[0]} feature vectors")
            emb = emb.masked_scatter(mask.unsqueeze(-1), proj(feats.to(emb.device, self.text_proj.gate.weight.dtype)).to(emb.dtype))
        return emb

    def slot_hidden(self, input_ids, attention_mask, text=None, graph=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Last hidden states at pos(<label_token>) - 1 (n_slots, H) and the mask of those positions."""
        emb = self.splice(input_ids, text, graph)
        kwargs = dict(inputs_embeds=emb, attention_mask=attention_mask, output_hidden_states=True)
        try:
            out = self.lm(**kwargs, logits_to_keep=1)
        except TypeError:  # models without logits_to_keep (remote-code ChatGLM)
            out = self.lm(**kwargs)
        slot = torch.zeros_like(input_ids, dtype=torch.bool)
        pos = (input_ids == self.label_id).nonzero()
        slot[pos[:, 0], pos[:, 1] - 1] = True
        return out.hidden_states[-1][slot], slot

    def forward(self, input_ids, attention_mask, targets: list[int], text=None, graph=None) -> torch.Tensor:
        """Label-slot cross-entropy over the full vocabulary (targets: 1 normal -> Yes, 0 -> No).

        The training loss is `forward`, so `accelerate` (autocast, data-parallel) wraps exactly it."""
        labels = label_slot_labels(input_ids, self.label_id, [self.yes_id if t else self.no_id for t in targets])
        h, slot = self.slot_hidden(input_ids, attention_mask, text, graph)
        logits = self.lm.get_output_embeddings()(h).float()
        return F.cross_entropy(logits, labels[slot])

    @torch.no_grad()
    def scores(self, input_ids, attention_mask, text=None, graph=None) -> torch.Tensor:
        """P(Yes) from the softmax over the two answer logits, one per label slot."""
        h, _ = self.slot_hidden(input_ids, attention_mask, text, graph)
        w = self.lm.get_output_embeddings().weight[[self.yes_id, self.no_id]]
        return torch.softmax((h @ w.T).float(), dim=-1)[:, 0]

    def stage_parameters(self, stage: int) -> dict[str, nn.Parameter]:
        if stage == 1:
            return {n: p for n, p in self.named_parameters() if "lora_" in n}
        module = self.text_proj if stage == 2 else self.graph_proj
        prefix = "text_proj." if stage == 2 else "graph_proj."
        return {prefix + n: p for n, p in module.named_parameters()}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """LoRA and projector weights (everything that MIND trains)."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if "lora_" in n or n.startswith(("text_proj", "graph_proj"))}

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.named_parameters())
        for n, v in state.items():
            if n not in params:
                raise InputError(f"saved MIND weight {n!r} does not match this model (another base LM or LoRA setting?)")
            with torch.no_grad():
                params[n].copy_(v.to(params[n].device, params[n].dtype))


def _resize_with_mean(lm, n: int) -> None:
    """Resize the vocabulary; new rows = the mean of the old ones (deterministic, unlike sampling)."""
    old = lm.get_input_embeddings().weight.shape[0]
    lm.resize_token_embeddings(n, mean_resizing=False)
    with torch.no_grad():
        for layer in (lm.get_input_embeddings(), lm.get_output_embeddings()):
            if layer is not None and layer.weight.shape[0] == n:
                layer.weight[old:] = layer.weight[:old].mean(0)


# ------------------------------------------------------------------------------------------------
# Prompt packing


@dataclass
class Pack:
    """One forward pass: an author's profile as context and up to `packing_size` query papers."""

    aid: str
    context: list[str]
    queries: list[str]
    targets: list[int] | None = None  # 1 normal / 0 outlier


def balanced_packs(authors: list, pack_size: int, repeats: int, max_profile: int, seed: int) -> list[Pack]:
    """Per round and author: down-sample the larger class to the smaller, shuffle, cut into packs."""
    rng = random.Random(seed)
    packs = []
    for _ in range(repeats):
        for a in authors:
            lab = a.labels
            normal = [p for p in a.papers if lab[p] == 1]
            outl = [p for p in a.papers if lab[p] == 0]
            k = min(len(normal), len(outl))
            if k == 0:
                continue  # one class only: nothing to balance
            chosen = rng.sample(normal, k) + rng.sample(outl, k)
            rng.shuffle(chosen)
            context = rng.sample(a.papers, len(a.papers))[:max_profile]
            for i in range(0, len(chosen), pack_size):
                q = chosen[i: i + pack_size]
                packs.append(Pack(a.aid, context, q, [lab[p] for p in q]))
    rng.shuffle(packs)
    return packs


def inference_packs(authors: list, pack_size: int, max_profile: int) -> list[Pack]:
    packs = []
    for a in authors:
        for i in range(0, len(a.papers), pack_size):
            packs.append(Pack(a.aid, a.papers[:max_profile], a.papers[i: i + pack_size]))
    return packs


def _clean_title(title: str) -> str:
    """A title must not contain the separators or the special tokens themselves."""
    for t in SPECIAL_TOKENS:
        title = title.replace(t, " ")
    return title.replace("#", " ")


class PromptBuilder:
    """Turns a Pack into input ids plus the text/graph feature rows in token order.

    A prompt never exceeds `max_length` tokens: the profile context is cut by whole titles from
    its end (as the official `_get_cut_num`), and every cut is counted in `stats`; queries alone
    longer than `max_length` are refused with a message naming the settings to change."""

    def __init__(self, tok, titles: dict[str, str], cfg: MindConfig, max_length: int):
        self.tok, self.cfg, self.max_length = tok, cfg, max_length
        cut = cfg.max_title_words
        self.titles = {p: _clean_title(" ".join(t.split()[:cut]) if cut else t) for p, t in titles.items()}
        self._len: dict[str, int] = {}
        self.lengths: list[int] = []  # tokens of every prompt built
        self.cut_prompts = 0  # prompts whose context lost titles to fit
        self.cut_titles = 0  # context titles dropped in total

    def _tlen(self, pid: str) -> int:
        if pid not in self._len:
            self._len[pid] = len(self.tok(self.titles[pid], add_special_tokens=False)["input_ids"])
        return self._len[pid]

    def piece(self, pid: str, modalities: tuple[str, ...], query: bool = False) -> str:
        graph = "graph" in modalities and not (query and self.cfg.graph_slot == "label")
        return (GRAPH if graph else "") + (EMB if "text" in modalities else "") + self.titles[pid]

    def query(self, pid: str, modalities: tuple[str, ...]) -> str:
        text = QUERY.format(paper=self.piece(pid, modalities, query=True))
        if "graph" in modalities and self.cfg.graph_slot == "label":
            text = text.replace(LABEL, GRAPH + LABEL)
        return text

    def text(self, pack: Pack, modalities: tuple[str, ...], n_context: int) -> str:
        context = "#".join(self.piece(p, modalities) for p in pack.context[:n_context])
        queries = "# ".join(self.query(p, modalities) for p in pack.queries)
        return INSTRUCTION.format(context=context, queries=queries)

    def encode(self, pack: Pack, modalities: tuple[str, ...]) -> tuple[list[int], list[str]]:
        """Token ids, and the pids whose modality tokens appear, in order; whole titles dropped to fit."""
        bos = [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []
        limit = self.max_length - len(bos)
        special = len(modalities)
        fixed = len(self.tok(self.text(Pack(pack.aid, [], pack.queries), modalities, 0), add_special_tokens=False)["input_ids"])
        if fixed > limit:
            raise InputError(f"author {pack.aid!r}: the {len(pack.queries)} queries alone take {fixed} tokens, more than "
                             f"the prompt limit of {limit}; lower packing_size or max_title_words, or use an LM "
                             "trained on a longer context")
        budget, n = limit - fixed, 0
        for p in pack.context:
            cost = self._tlen(p) + special + 1
            if cost > budget:
                break
            budget -= cost
            n += 1
        while True:
            ids = self.tok(self.text(pack, modalities, n), add_special_tokens=False)["input_ids"]
            if len(ids) <= limit or n == 0:
                break
            n -= 1
        dropped = len(pack.context) - n
        self.cut_prompts += dropped > 0
        self.cut_titles += dropped
        self.lengths.append(len(bos) + len(ids))
        pids = pack.context[:n] + pack.queries
        return bos + ids, pids if modalities else []

    def stats(self) -> dict:
        """Prompt lengths (tokens) and how many prompts were cut to fit `max_length`."""
        import numpy as np

        a = np.asarray(self.lengths or [0])
        return {"prompts": len(self.lengths), "max_length": self.max_length, "min": int(a.min()),
                "median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "max": int(a.max()),
                "cut_prompts": self.cut_prompts, "cut_titles": self.cut_titles}


@dataclass
class Features:
    """Per-paper text vectors and per-(author, paper) graph vectors."""

    text: dict[str, torch.Tensor]
    graph: dict[tuple[str, str], torch.Tensor]

    def rows(self, aid: str, pids: list[str], modalities: tuple[str, ...]):
        t = torch.stack([self.text[p] for p in pids]) if "text" in modalities and pids else None
        g = torch.stack([self.graph[(aid, p)] for p in pids]) if "graph" in modalities and pids else None
        return t, g


def _batch(model: MindModel, builder: PromptBuilder, feats: Features, pack: Pack, modalities, device):
    ids, pids = builder.encode(pack, modalities)
    input_ids = torch.tensor([ids], device=device)
    text, graph = feats.rows(pack.aid, pids, modalities)
    return input_ids, torch.ones_like(input_ids), text, graph


# ------------------------------------------------------------------------------------------------
# Training stages and scoring


def stage_lr(stage: StageConfig, step: int) -> float:
    """Constant, or cosine decay to 0 after a linear warm-up over `warmup` of the steps (HF's schedules)."""
    warm = int(math.ceil(stage.warmup * stage.steps))
    if step < warm:
        return stage.lr * (step + 1) / warm
    if stage.schedule != "cosine":
        return stage.lr
    return stage.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, stage.steps - warm)))


def step_packs(n_packs: int, stage: StageConfig, step: int, order: torch.Tensor) -> list[int]:
    """The global batch of pack indices of one optimizer step (the same in every process)."""
    return [int(order[(step * stage.batch + i) % n_packs]) for i in range(stage.batch)]


def train_stage(model: MindModel, stage: int, packs: list[Pack], builder: PromptBuilder, feats: Features,
                folder: str | Path, seed: int = 0, stop_after: int | None = None) -> dict:
    """Run one training stage with checkpoints in `folder`; an interrupted stage resumes where it stopped.

    Runs through `tenfold.core.accel` (device, --mixed-precision, data-parallel: each process takes its
    share of every step's packs); only the main process writes. Returns {"losses": [...], "done": bool}.
    A finished stage leaves `stage{k}.safetensors` (all trained weights so far), and a rerun loads it
    instead of training again. `stop_after` simulates an interruption after that many steps (tests).
    """
    from tenfold.core.accel import accelerator, local_slice

    folder = Path(folder)
    final = folder / f"stage{stage}.safetensors"
    if final.is_file():
        model.load_trainable(load_tensors(final))
        return {"losses": read_json(folder / f"stage{stage}.json")["losses"], "done": True}
    if not packs:
        raise InputError("no training packs: the training authors need both normal and outlier papers")
    scfg = model.cfg.stages[stage - 1]
    modalities = STAGE_MODALITIES[stage]
    for p in model.parameters():
        p.requires_grad_(False)
    params = model.stage_parameters(stage)
    for p in params.values():
        p.requires_grad_(True)
    acc = accelerator()
    opt = torch.optim.AdamW(params.values(), lr=scfg.lr, weight_decay=0.0)
    wrapped, opt = acc.prepare(model, opt)
    ckpt = Checkpoint(folder / f"stage{stage}-state")
    state = ckpt.load()
    start, losses = 0, []
    if state is not None:
        model.load_trainable(state["weights"])
        opt.load_state_dict(state["opt"])
        start, losses = int(state["step"]), list(state["losses"])
        torch.set_rng_state(state["rng"])
    else:
        torch.manual_seed(seed + stage)
    order = torch.randperm(len(packs), generator=torch.Generator().manual_seed(seed + 100 * stage))
    wrapped.train()
    for step in progress(range(start, scfg.steps), desc=f"mind stage {stage}", total=scfg.steps, initial=start):
        mine = local_slice(step_packs(len(packs), scfg, step, order), acc)
        for g in opt.param_groups:
            g["lr"] = stage_lr(scfg, step)
        total = 0.0
        for i, k in enumerate(mine):
            input_ids, mask, text, graph = _batch(model, builder, feats, packs[k], modalities, acc.device)
            # gradients are averaged across processes once per step, at the last pack
            with acc.no_sync(wrapped) if i < len(mine) - 1 else nullcontext():
                loss = wrapped(input_ids, mask, packs[k].targets, text, graph) / len(mine)
                acc.backward(loss)
            total += loss.item()
        acc.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(round(float(acc.reduce(torch.tensor(total, device=acc.device), "mean")), 5))
        done = step + 1
        if done % model.cfg.save_every == 0 or done == stop_after:
            ckpt.save({"weights": model.trainable_state(), "opt": opt.state_dict(), "step": done,
                       "losses": losses, "rng": torch.get_rng_state()})
        if stop_after is not None and done >= stop_after and done < scfg.steps:
            model.eval()
            return {"losses": losses, "done": False}
    model.eval()
    if acc.is_main_process:
        save_tensors(final, model.trainable_state())
        atomic_write_json(folder / f"stage{stage}.json", {"stage": stage, "steps": scfg.steps, "losses": losses})
        ckpt.clear()
    acc.wait_for_everyone()
    return {"losses": losses, "done": True}


@torch.no_grad()
def score_packs(model: MindModel, packs: list[Pack], builder: PromptBuilder, feats: Features,
                modalities: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """{aid: {pid: P(Yes)}} over the inference packs (every process scores all of them)."""
    from tenfold.core.accel import accelerator

    acc = accelerator()
    model.eval()
    out: dict[str, dict[str, float]] = {}
    for pack in progress(packs, desc="mind scoring"):
        input_ids, mask, text, graph = _batch(model, builder, feats, pack, modalities, acc.device)
        with acc.autocast():
            s = model.scores(input_ids, mask, text, graph).float().cpu().tolist()
        out.setdefault(pack.aid, {}).update(zip(pack.queries, s, strict=True))
    return out
