"""The competing re-rankers, on the same embedding layer, batch format and training objective as RELIFE.

* `InitialRanker`: keeps the initial ranker's order (no training).
* `DLCM` (Ai et al., SIGIR'18): a GRU reads the list from the bottom up; each item is scored by
  local attention with the final state, phi(o_j, s) = v . (o_j * tanh(W s + b)).
* `PRM` (Pei et al., RecSys'19) with its personalisation vector: a pre-trained click model
  P(y_i | H_u, i) (`PersonalVector`, H_u the user's clicked history) gives pv_i, its last hidden
  layer; the input layer is E = W_E([x_i; pv_i] + pe_i) + b_E, then N_x transformer blocks and a
  linear output F W_F + b_F (PRM's softmax over the list is monotone, so it ranks the same).
* `SetRank` (Pang et al., SIGIR'20): stacked self-attention without positions (permutation-equivariant).
* `MIR` (Xi et al., SIGIR'22), equations from the authors' released code (model.py, `MIR` and
  `SLAttention`): cross-item self-attention over the candidate *set* V = [MHSA(X); X], a BiLSTM over
  the user's behaviour *list* Q = [BiLSTM(H); H] (clicked history items in time order), and the
  set-to-list SLAttention: an item- plus feature-level affinity C = Q W_b V^T + sum_fg w_fg Q_f W_F V_g^T,
  a personalised time decay C <- tanh(C (1 + exp(-theta_u t))), and the co-attention maps
  a_v[i, j] = softmax_j tanh(V_i w_v + sum_k (Q_k w_q) C_kj), a_q[i, k] = softmax_k tanh(Q_k w_q + (V_i w_v) sum_j C_kj),
  v_i = sum_j a_v V_j, q_i = sum_k a_q Q_k, score = MLP([X; v; q]).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tenfold.relife.model import Attention, AttentionBlock, ListEmbedding, masked_mean


@dataclass(frozen=True)
class BaselineConfig:
    n_items: int
    n_cats: int
    list_len: int = 10
    history_lists: int = 4
    dim: int = 16
    heads: int = 1
    blocks: int = 2


class InitialRanker(nn.Module):
    """Scores -position, so sorting keeps the initial order."""

    trainable = False

    def __init__(self, config: BaselineConfig | None = None):
        super().__init__()

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        B, L = batch["items"].shape
        return -torch.arange(L, dtype=torch.float32).expand(B, L), torch.zeros(())


class DLCM(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.state = nn.Linear(d, d)
        self.v = nn.Linear(d, 1, bias=False)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.embed.candidates(batch), batch["mask"]
        L = x.shape[1]
        lengths = mask.sum(1).clamp_min(1)
        steps = torch.arange(L, device=x.device)
        # bottom-up: the reversed valid prefix of each list, padding kept at the end
        idx = torch.where(mask, (lengths[:, None] - 1 - steps).clamp_min(0), steps.expand_as(mask))
        rev = torch.take_along_dim(x, idx.unsqueeze(-1), 1)
        packed = nn.utils.rnn.pack_padded_sequence(rev, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, s = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=L)
        o = torch.zeros_like(out).scatter(1, idx.unsqueeze(-1).expand_as(out), out)  # back to list order
        return self.v(o * torch.tanh(self.state(s[-1])).unsqueeze(1)).squeeze(-1), x.new_zeros(())


class PersonalVector(nn.Module):
    """PRM's pre-trained model (Pei et al. 2019, Fig. 1(c)): P(click on i | clicked history H_u, i).

    pv_i = MLP([x_i; h_u; x_i * h_u]) with h_u the mean of the clicked history items; the output
    layer w . pv_i + b is trained with the same objective as every re-ranker, then pv is frozen.
    """

    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.hidden = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d), nn.ReLU())
        self.out = nn.Linear(d, 1)

    def vectors(self, batch: dict) -> torch.Tensor:
        """pv (B, L, d)."""
        x = self.embed.candidates(batch)
        hist = self.embed.history(batch).flatten(1, 2)
        clicked = (batch["hist_mask"] & (batch["hist_labels"] > 0.5)).flatten(1, 2)
        h = masked_mean(hist, clicked).unsqueeze(1).expand_as(x)
        return self.hidden(torch.cat([x, h, x * h], -1))

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return self.out(self.vectors(batch)).squeeze(-1), batch["scores"].new_zeros(())


class PRM(nn.Module):
    def __init__(self, config: BaselineConfig, personal: PersonalVector | None = None):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.personal = personal or PersonalVector(config)
        self.personal.requires_grad_(False)
        self.position = nn.Embedding(config.list_len, 2 * d)
        self.input = nn.Linear(2 * d, d)
        self.blocks = nn.ModuleList(AttentionBlock(d, config.heads) for _ in range(config.blocks))
        self.out = nn.Linear(d, 1)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed.candidates(batch)
        with torch.no_grad():
            self.personal.eval()
            pv = self.personal.vectors(batch)
        x = self.input(torch.cat([x, pv], -1) + self.position.weight[: x.shape[1]])  # E = W_E([x; pv] + PE) + b_E
        for block in self.blocks:
            x = block(x, batch["mask"])
        return self.out(x).squeeze(-1), x.new_zeros(())


class SetRank(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.blocks = nn.ModuleList(AttentionBlock(d, config.heads) for _ in range(config.blocks))
        self.out = nn.Linear(d, 1)

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed.candidates(batch)
        for block in self.blocks:
            x = block(x, batch["mask"])
        return self.out(x).squeeze(-1), x.new_zeros(())


def clicked_sequence(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The user's behaviour list for MIR: clicked history items in time order, compacted to the front.

    Returns gather indices into the flattened history (B, T), their mask (B, T) and their age in lists
    (B, T), T the most clicks of any user in the batch (at least 1).
    """
    B, H, L = batch["hist_mask"].shape
    clicked = (batch["hist_mask"] & (batch["hist_labels"] > 0.5)).reshape(B, H * L)
    order = torch.argsort((~clicked).to(torch.int8), dim=1, stable=True)  # clicked first, time order kept
    T = max(int(clicked.sum(1).max()), 1)
    idx = order[:, :T]
    mask = torch.take_along_dim(clicked, idx, 1)
    age = (H - idx.div(L, rounding_mode="floor")).float()  # 1 for the most recent list
    return idx, mask, age


class SLAttention(nn.Module):
    """MIR's set-to-list attention (authors' code, model.py `SLAttention`, with the weight vectors w_v, w_q
    shared across candidate slots so the scores stay permutation-equivariant, as the paper proves)."""

    def __init__(self, v_dim: int, q_dim: int, field_dim: int, fields: int):
        super().__init__()
        self.w_b = nn.Parameter(torch.randn(q_dim, v_dim) * q_dim ** -0.5)
        self.w_fi = nn.Parameter(torch.randn(field_dim, field_dim) * field_dim ** -0.5)
        self.field_pairs = nn.Parameter(torch.full((fields, fields), 1.0 / fields))  # the code's conv kernel
        self.w_v = nn.Linear(v_dim, 1, bias=False)
        self.w_q = nn.Linear(q_dim, 1, bias=False)

    def forward(self, V: torch.Tensor, Q: torch.Tensor, V_fields: torch.Tensor, Q_fields: torch.Tensor,
                v_mask: torch.Tensor, q_mask: torch.Tensor, age: torch.Tensor, theta: torch.Tensor):
        """V (B, L, dv), Q (B, T, dq), *_fields (B, n, F, df), masks, age (B, T), theta (B,) -> v, q (B, L, .)."""
        c_item = Q @ self.w_b @ V.transpose(1, 2)  # (B, T, L)
        c_field = torch.einsum("btpe,eg,blqg,pq->btl", Q_fields, self.w_fi, V_fields, self.field_pairs)
        C = torch.tanh((c_item + c_field) * (1.0 + torch.exp(-theta[:, None, None] * age[..., None])))
        C = C * q_mask[..., None] * v_mask[:, None, :]
        hv, hq = self.w_v(V), self.w_q(Q).transpose(1, 2)  # (B, L, 1), (B, 1, T)
        logits_v = torch.tanh(hv + (hq @ C))  # (B, L, L): candidate i over candidates j
        a_v = torch.softmax(logits_v.masked_fill(~v_mask[:, None, :], -1e9), -1)
        logits_q = torch.tanh(hq + hv * C.sum(-1)[:, None, :])  # (B, L, T): candidate i over history k
        a_q = torch.softmax(logits_q.masked_fill(~q_mask[:, None, :], -1e9), -1) * q_mask.any(-1)[:, None, None]
        return a_v @ V, a_q @ Q


class MIR(nn.Module):
    def __init__(self, config: BaselineConfig):
        super().__init__()
        d = config.dim
        self.embed = ListEmbedding(config.n_items, config.n_cats, d)
        self.cross_item = Attention(d, config.heads)
        self.lstm = nn.LSTM(d, d // 2, batch_first=True, bidirectional=True)
        self.decay = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, 1), nn.ReLU())
        self.sl = SLAttention(2 * d, d + 2 * (d // 2), d, 2)
        self.out = nn.Sequential(nn.Linear(d + 2 * d + d + 2 * (d // 2), 2 * d), nn.ReLU(), nn.Linear(2 * d, 1))

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x, mask = self.embed.candidates(batch), batch["mask"]
        V = torch.cat([self.cross_item(x, x, mask), x], -1)  # intra-set interaction (no positions)
        idx, q_mask, age = clicked_sequence(batch)
        flat = lambda t: t.flatten(1, 2)  # noqa: E731
        pick = lambda t: torch.take_along_dim(flat(t), idx.reshape(*idx.shape, *([1] * (t.dim() - 3))), 1)  # noqa: E731
        h = self.embed(pick(batch["hist_items"]), pick(batch["hist_cats"]), pick(batch["hist_scores"]))
        h = h * q_mask[..., None]
        lengths = q_mask.sum(1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h, lengths, batch_first=True, enforce_sorted=False)
        seq, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=h.shape[1])
        Q = torch.cat([seq, h], -1) * q_mask[..., None]  # intra-list interaction
        theta = self.decay(masked_mean(h, q_mask)).squeeze(-1)  # personalised decay from the history summary
        fields = lambda items, cats: torch.stack([self.embed.item(items), self.embed.cat(cats)], -2)  # noqa: E731
        v, q = self.sl(V, Q, fields(batch["items"], batch["cats"]),
                       fields(pick(batch["hist_items"]), pick(batch["hist_cats"])), mask, q_mask, age, theta)
        return self.out(torch.cat([x, v, q], -1)).squeeze(-1), x.new_zeros(())


BASELINES = {"initial": InitialRanker, "dlcm": DLCM, "prm": PRM, "setrank": SetRank, "mir": MIR}
