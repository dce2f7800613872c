"""Exposure lists with list-level feedback for re-ranking (RELIFE), in two regimes never mixed:

* **logged**: lists cut from real ratings (MovieLens-100K from the installed recbole wheel, or any
  RecBole atomic-file folder): consecutive interactions per user, label rating >= 4, history = the
  user's earlier lists with their 0/1 labels, candidate order from an initial ranker (our own matrix
  factorisation) trained on the earliest lists of each user only.
* **simulated**: a frozen ground-truth relevance model (MF fit on all ratings), exposures from the
  initial ranker plus Gaussian noise, and clicks from an explicit click model (position-based
  observation (1/pos)^eta, cascade stop after a click with probability `stop`, and a within-list
  comparison effect of strength `beta`; beta = 0 removes it).

Lists are padded to `list_len`; item index 0 is padding and 1 is the shared cold-start item (any item
not seen in re-ranker training); genre index 0 is padding and 1 "unknown".
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.data.registry import DatasetSpec, register_dataset

PAD, COLD = 0, 1
_ARRAYS = ("user", "items", "cats", "scores", "labels", "mask",
           "hist_items", "hist_cats", "hist_labels", "hist_mask", "relevance")


@dataclass(frozen=True)
class ListConfig:
    """How lists are cut. list_len 10 and label rating >= 4 follow LibRerank/KAR (research note 2.4, 4.4)."""

    list_len: int = 10
    history_lists: int = 5
    min_list_len: int = 2
    label_threshold: float = 4.0
    ranker_fraction: float = 0.3  # earliest lists of each user train the initial ranker only
    ranker_dim: int = 16
    ranker_epochs: int = 100
    max_users: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.list_len < 2:
            raise InputError(f"list_len must be at least 2, got {self.list_len}")
        if self.history_lists < 0:
            raise InputError(f"history_lists must be >= 0, got {self.history_lists}")
        if not 1 <= self.min_list_len <= self.list_len:
            raise InputError(f"min_list_len must be in [1, list_len={self.list_len}], got {self.min_list_len}")
        if not 0 < self.ranker_fraction < 1:
            raise InputError(f"ranker_fraction must be in (0, 1), got {self.ranker_fraction}")


@dataclass(frozen=True)
class ClickModel:
    """Position-based observation, cascade stopping and a within-list comparison effect.

    P(observe position j) = (1/j)^eta (allRank BaseCascadeModel); after a click the user stops with
    probability `stop` (stop=1 is the cascade model, stop=0 pure PBM); the click probability of an
    observed item is r'_j = sigmoid(logit r_j + beta (r_j - mean_{l != j} r_l)) (research note 4.4).
    """

    eta: float = 1.0
    stop: float = 0.5
    beta: float = 0.0

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise InputError(f"click model eta must be >= 0, got {self.eta}")
        if not 0 <= self.stop <= 1:
            raise InputError(f"click model stop probability must be in [0, 1], got {self.stop}")

    def observation(self, n: int) -> np.ndarray:
        """theta_j = (1/j)^eta for positions j = 1..n."""
        return (1.0 / np.arange(1, n + 1)) ** self.eta

    def comparison(self, r: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """r' from r (N, n) within each list's valid items; padded positions get 0."""
        r = np.clip(r, 1e-6, 1 - 1e-6)
        count = mask.sum(-1, keepdims=True)
        others = np.where(count > 1, ((r * mask).sum(-1, keepdims=True) - r) / np.maximum(count - 1, 1), r)
        logit = np.log(r) - np.log1p(-r) + self.beta * (r - others)
        return np.where(mask, 1.0 / (1.0 + np.exp(-logit)), 0.0)

    def click_probabilities(self, r: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Exact marginal P(click at j) for lists in display order: reach_{j+1} = reach_j (1 - stop theta_j r'_j)."""
        rp = self.comparison(r, mask)
        theta = self.observation(r.shape[-1])
        reach = np.ones(r.shape[0])
        out = np.zeros_like(rp)
        for j in range(r.shape[-1]):
            out[:, j] = reach * theta[j] * rp[:, j]
            reach = reach * (1.0 - self.stop * theta[j] * rp[:, j])
        return out

    def expected_clicks(self, r: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(N,) expected number of clicks of each displayed list, exact."""
        return self.click_probabilities(r, mask).sum(-1)

    def sample(self, r: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Clicks (N, n) in {0, 1} for lists shown in the given order."""
        rp = self.comparison(r, mask)
        theta = self.observation(r.shape[-1])
        reached = np.ones(r.shape[0], dtype=bool)
        clicks = np.zeros_like(rp)
        for j in range(r.shape[-1]):
            click = reached & (rng.random(len(rp)) < theta[j]) & (rng.random(len(rp)) < rp[:, j]) & mask[:, j]
            clicks[:, j] = click
            reached &= ~(click & (rng.random(len(rp)) < self.stop))
        return clicks


@dataclass(frozen=True)
class SimulatorConfig:
    """Simulator regime settings (all written into the result config)."""

    lists_per_user: int = 8
    pool_factor: int = 2  # candidates drawn by popularity before the initial ranker picks list_len
    ranker_noise: float = 1.0  # std of Gaussian noise added to initial-ranker scores
    truth_sharpness: float = 0.3  # r = sigmoid(sharpness * MF logit); the ML-100K MF logit has std ~5, so r spreads over (0, 1)
    click: ClickModel = field(default_factory=ClickModel)
    seed: int = 0


@dataclass
class ListData:
    """Padded lists; candidates are in initial-ranker order (position 1 first).

    user (N,); items/cats/scores/labels/mask (N, L); hist_* (N, H, L) with the most recent list last;
    relevance (N, L): the simulator's ground-truth r (zeros in the logged regime).
    """

    user: np.ndarray
    items: np.ndarray
    cats: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    hist_items: np.ndarray
    hist_cats: np.ndarray
    hist_labels: np.ndarray
    hist_mask: np.ndarray
    relevance: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.user)

    def select(self, idx: np.ndarray) -> ListData:
        return ListData(**{k: getattr(self, k)[idx] for k in _ARRAYS}, meta=dict(self.meta))

    def tensors(self, idx: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """A batch as torch tensors (long ids, float labels/scores, bool masks)."""
        idx = np.arange(len(self)) if idx is None else idx
        out = {}
        for k in _ARRAYS:
            a = getattr(self, k)[idx]
            out[k] = torch.from_numpy(np.ascontiguousarray(a))
        return out

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        save_tensors(path, {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k))) for k in _ARRAYS},
                     metadata={"meta": json.dumps(self.meta)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ListData:
        from safetensors import safe_open

        path = Path(path)
        t = load_tensors(path)
        missing = [k for k in _ARRAYS if k not in t]
        if missing:
            raise SchemaError(f"{path} lacks list arrays {missing}: rebuild it with `tenfold relife build-lists`")
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        return cls(**{k: t[k].numpy() for k in _ARRAYS}, meta=meta)


@dataclass
class ListSplits:
    """train and test lists of one regime plus what built them (vocabulary sizes, seeds, settings)."""

    train: ListData
    test: ListData
    info: dict

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        self.train.save(folder / "train.safetensors")
        self.test.save(folder / "test.safetensors")
        atomic_write_json(folder / "lists.json", self.info)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ListSplits:
        folder = Path(folder)
        if not (folder / "lists.json").is_file():
            raise InputError(f"{folder} holds no lists.json: build lists with `tenfold relife build-lists --out {folder}`")
        return cls(ListData.load(folder / "train.safetensors"), ListData.load(folder / "test.safetensors"),
                   read_json(folder / "lists.json"))


def pad_lists(lists: list[list[int]], length: int, fill: float = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad ragged lists to `length`; longer lists are rejected. Returns (values, mask)."""
    too_long = [len(x) for x in lists if len(x) > length]
    if too_long:
        raise InputError(f"a list has {max(too_long)} items but list_len is {length}: raise list_len or cut the lists")
    values = np.full((len(lists), length), fill, dtype=np.float64)
    mask = np.zeros((len(lists), length), dtype=bool)
    for i, x in enumerate(lists):
        values[i, : len(x)] = x
        mask[i, : len(x)] = True
    return values, mask


# ---------------------------------------------------------------- initial ranker / ground truth (MF)

@dataclass
class MFRanker:
    """Pointwise matrix factorisation: score(u, i) = b + b_u + b_i + p_u . q_i (unknown ids score 0 there)."""

    user_index: dict
    item_index: dict
    bias: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_vec: np.ndarray
    item_vec: np.ndarray

    def score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores for raw ids; `users` (N,) broadcast against `items` (N, L) or (N,)."""
        ui = np.array([self.user_index.get(u, -1) for u in users])
        shape = np.shape(items)
        flat = np.array([self.item_index.get(i, -1) for i in np.ravel(items)]).reshape(shape)
        pu = np.where((ui >= 0)[:, None], self.user_vec[ui], 0.0)
        bu = np.where(ui >= 0, self.user_bias[ui], 0.0)
        qi = np.where((flat >= 0)[..., None], self.item_vec[flat], 0.0)
        bi = np.where(flat >= 0, self.item_bias[flat], 0.0)
        if len(shape) == 2:
            return self.bias + bu[:, None] + bi + np.einsum("nd,nld->nl", pu, qi)
        return self.bias + bu + bi + (pu * qi).sum(-1)


def fit_mf(users: np.ndarray, items: np.ndarray, labels: np.ndarray, dim: int = 16, epochs: int = 200,
           l2: float = 1e-3, lr: float = 0.05, seed: int = 0) -> MFRanker:
    """Fit MF with full-batch Adam on binary labels (BCE); deterministic for a seed."""
    if len(users) == 0:
        raise InputError("cannot fit the initial ranker on zero interactions: give more data per user")
    u_keys, u_idx = np.unique(users, return_inverse=True)
    i_keys, i_idx = np.unique(items, return_inverse=True)
    g = torch.Generator().manual_seed(seed)
    pu = (0.1 * torch.randn(len(u_keys), dim, generator=g)).requires_grad_()
    qi = (0.1 * torch.randn(len(i_keys), dim, generator=g)).requires_grad_()
    bu = torch.zeros(len(u_keys), requires_grad=True)
    bi = torch.zeros(len(i_keys), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    ut, it = torch.from_numpy(u_idx), torch.from_numpy(i_idx)
    y = torch.from_numpy(labels.astype(np.float32))
    opt = torch.optim.Adam([pu, qi, bu, bi, b], lr=lr)
    for _ in range(epochs):
        logit = b + bu[ut] + bi[it] + (pu[ut] * qi[it]).sum(-1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
        loss = loss + l2 * (pu.pow(2).sum(-1).mean() + qi.pow(2).sum(-1).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return MFRanker({k: n for n, k in enumerate(u_keys.tolist())}, {k: n for n, k in enumerate(i_keys.tolist())},
                    float(b.detach()), bu.detach().numpy().astype(np.float64), bi.detach().numpy().astype(np.float64),
                    pu.detach().numpy().astype(np.float64), qi.detach().numpy().astype(np.float64))


# ---------------------------------------------------------------- shared helpers

def _genre_of(dataset) -> dict:
    """Raw item id -> first genre name ('' when the item table is missing)."""
    if dataset.item is None or "class" not in dataset.item.columns:
        return {}
    return {str(i): (str(c).split(" ")[0] if str(c) else "") for i, c in zip(dataset.item["item_id"], dataset.item["class"], strict=True)}


def _user_chunks(dataset, cfg: ListConfig) -> list[tuple[str, list[list[int]]]]:
    """Per user, consecutive interactions cut into lists of cfg.list_len (row indices into inter)."""
    inter = dataset.inter
    out = []
    for user, rows in inter.groupby("user_id", sort=True).indices.items():
        chunks = [rows[s: s + cfg.list_len].tolist() for s in range(0, len(rows), cfg.list_len)]
        chunks = [c for c in chunks if len(c) >= cfg.min_list_len]
        if len(chunks) >= 2:
            out.append((str(user), chunks))
    if cfg.max_users is not None:
        out = out[: cfg.max_users]
    if not out:
        raise InputError(f"no user has two lists of at least {cfg.min_list_len} interactions: "
                         "the data is too small for re-ranking with history")
    return out


def _assemble(samples: list[dict], item_vocab: dict, cat_vocab: dict, genre: dict, cfg: ListConfig,
              user_index: dict, meta: dict) -> ListData:
    """Turn per-list dicts (raw ids, labels, scores, history) into padded arrays."""
    n, L, H = len(samples), cfg.list_len, cfg.history_lists
    a = {k: np.zeros((n, L), dtype=np.int64) for k in ("items", "cats")}
    a.update({k: np.zeros((n, L), dtype=np.float32) for k in ("scores", "labels", "relevance")})
    a["mask"] = np.zeros((n, L), dtype=bool)
    h = {k: np.zeros((n, H, L), dtype=np.int64) for k in ("hist_items", "hist_cats")}
    h["hist_labels"] = np.zeros((n, H, L), dtype=np.float32)
    h["hist_mask"] = np.zeros((n, H, L), dtype=bool)
    vocab = lambda i: item_vocab.get(i, COLD)  # noqa: E731
    cat = lambda i: cat_vocab.get(genre.get(i, ""), 1)  # noqa: E731
    for s, d in enumerate(samples):
        m = len(d["items"])
        a["items"][s, :m] = [vocab(i) for i in d["items"]]
        a["cats"][s, :m] = [cat(i) for i in d["items"]]
        a["scores"][s, :m] = d["scores"]
        a["labels"][s, :m] = d["labels"]
        a["relevance"][s, :m] = d.get("relevance", np.zeros(m))
        a["mask"][s, :m] = True
        hist = d["history"][-H:] if H else []
        offset = H - len(hist)  # most recent list last; missing history stays masked
        for k, (items, labels) in enumerate(hist):
            m = len(items)
            h["hist_items"][s, offset + k, :m] = [vocab(i) for i in items]
            h["hist_cats"][s, offset + k, :m] = [cat(i) for i in items]
            h["hist_labels"][s, offset + k, :m] = labels
            h["hist_mask"][s, offset + k, :m] = True
    user = np.array([user_index[d["user"]] for d in samples], dtype=np.int64)
    return ListData(user=user, **a, **h, meta=meta)


def _vocabularies(train_samples: list[dict], genre: dict) -> tuple[dict, dict]:
    """Item vocabulary from re-ranker training lists (candidates and history); genres from the item table."""
    seen = sorted({i for d in train_samples for i in d["items"]} |
                  {i for d in train_samples for items, _ in d["history"] for i in items})
    item_vocab = {i: n + 2 for n, i in enumerate(seen)}
    cats = sorted({g for g in genre.values() if g})
    return item_vocab, {c: n + 2 for n, c in enumerate(cats)}


def _order_by(scores: np.ndarray) -> np.ndarray:
    """Descending order of scores, ties broken by original position (stable)."""
    return np.argsort(-np.asarray(scores), kind="stable")


# ---------------------------------------------------------------- logged regime

def _plans(dataset, cfg: ListConfig) -> list[tuple[str, list[list[int]], int]]:
    """(user, lists of row indices, number of earliest lists reserved for the initial ranker)."""
    return [(user, chunks, min(max(1, round(len(chunks) * cfg.ranker_fraction)), len(chunks) - 1))
            for user, chunks in _user_chunks(dataset, cfg)]


def fit_initial_ranker(dataset, cfg: ListConfig = ListConfig()) -> MFRanker:
    """The initial ranker: MF fit on each user's earliest `ranker_fraction` lists only (earlier data)."""
    inter = dataset.inter
    rows = np.array([r for _, chunks, k_rank in _plans(dataset, cfg) for c in chunks[:k_rank] for r in c])
    labels = (inter["rating"].to_numpy(dtype=float) >= cfg.label_threshold).astype(np.float32)
    return fit_mf(inter["user_id"].astype(str).to_numpy()[rows], inter["item_id"].astype(str).to_numpy()[rows],
                  labels[rows], dim=cfg.ranker_dim, epochs=cfg.ranker_epochs, seed=cfg.seed)


def build_logged_lists(dataset, cfg: ListConfig = ListConfig(), ranker: MFRanker | None = None) -> ListSplits:
    """Lists from real ratings: per user the last list is test, the earliest `ranker_fraction` train the
    initial ranker, the rest train the re-ranker; candidates are ordered by the initial ranker."""
    inter = dataset.inter
    if "rating" not in inter.columns:
        raise InputError("logged lists need a 'rating' column in the .inter file (labels are rating >= threshold)")
    genre = _genre_of(dataset)
    item_ids = inter["item_id"].astype(str).to_numpy()
    labels = (inter["rating"].to_numpy(dtype=float) >= cfg.label_threshold).astype(np.float32)
    plans = _plans(dataset, cfg)
    ranker = ranker or fit_initial_ranker(dataset, cfg)
    train, test = [], []
    for user, chunks, k_rank in plans:
        history = []
        for k, rows in enumerate(chunks):
            items = item_ids[rows]
            if k >= k_rank:
                scores = ranker.score(np.array([user]), items[None, :])[0]
                order = _order_by(scores)
                d = {"user": user, "items": items[order].tolist(), "labels": labels[rows][order],
                     "scores": scores[order], "history": list(history)}
                (test if k == len(chunks) - 1 else train).append(d)
            history.append((items.tolist(), labels[rows]))
    if not train:
        raise InputError("no re-ranker training lists: users need at least three lists (use more data or a smaller list_len)")
    item_vocab, cat_vocab = _vocabularies(train, genre)
    user_index = {u: n for n, (u, _, _) in enumerate(plans)}
    meta = {"regime": "logged", "n_items": len(item_vocab) + 2, "n_cats": len(cat_vocab) + 2, "n_users": len(user_index)}
    info = {**meta, "dataset": dataset.name, "config": asdict(cfg), "train_lists": len(train), "test_lists": len(test),
            "ranker": "matrix factorisation (BCE, full-batch Adam) on each user's earliest lists"}
    return ListSplits(_assemble(train, item_vocab, cat_vocab, genre, cfg, user_index, meta),
                      _assemble(test, item_vocab, cat_vocab, genre, cfg, user_index, meta), info)


# ---------------------------------------------------------------- simulator regime

def fit_ground_truth(dataset, cfg: ListConfig = ListConfig()) -> MFRanker:
    """The simulator's frozen relevance model: MF fit on all ratings (label rating >= threshold)."""
    inter = dataset.inter
    labels = (inter["rating"].to_numpy(dtype=float) >= cfg.label_threshold).astype(np.float32)
    return fit_mf(inter["user_id"].astype(str).to_numpy(), inter["item_id"].astype(str).to_numpy(), labels,
                  dim=cfg.ranker_dim, epochs=cfg.ranker_epochs, seed=cfg.seed + 7919)


def build_simulated_lists(dataset, cfg: ListConfig = ListConfig(), sim: SimulatorConfig = SimulatorConfig(),
                          truth: MFRanker | None = None, ranker: MFRanker | None = None) -> ListSplits:
    """Exposures from the initial ranker (+ noise) over popularity-sampled pools, clicks from `sim.click`.

    Per user `sim.lists_per_user` lists; the last is test. `relevance` stores the ground-truth r so
    any re-ranked order can be scored exactly under the same click model.
    """
    if sim.lists_per_user < 2:
        raise InputError(f"lists_per_user must be at least 2 (history + test), got {sim.lists_per_user}")
    inter = dataset.inter
    genre = _genre_of(dataset)
    truth = truth or fit_ground_truth(dataset, cfg)
    ranker = ranker or fit_initial_ranker(dataset, cfg)
    users = sorted(inter["user_id"].astype(str).unique().tolist())
    if cfg.max_users is not None:
        users = users[: cfg.max_users]
    counts = inter["item_id"].astype(str).value_counts()
    catalog = np.array(counts.index.tolist())
    logp = np.log(counts.to_numpy(dtype=float) / counts.sum())
    L, pool = cfg.list_len, min(cfg.list_len * sim.pool_factor, len(catalog))
    if len(catalog) < L:
        raise InputError(f"the catalogue has {len(catalog)} items, fewer than list_len={L}")
    rng = np.random.default_rng(sim.seed)
    n = len(users) * sim.lists_per_user
    user_rows = np.repeat(np.array(users), sim.lists_per_user)
    gumbel = logp[None, :] - np.log(-np.log(rng.random((n, len(catalog)))))
    cand = catalog[np.argpartition(-gumbel, pool - 1, axis=1)[:, :pool]]  # (n, pool) popularity-sampled
    noisy = ranker.score(user_rows, cand) + sim.ranker_noise * rng.standard_normal(cand.shape)
    top = np.argsort(-noisy, axis=1, kind="stable")[:, :L]
    items = np.take_along_axis(cand, top, 1)
    scores = np.take_along_axis(noisy, top, 1)
    relevance = 1.0 / (1.0 + np.exp(-sim.truth_sharpness * truth.score(user_rows, items)))
    mask = np.ones_like(relevance, dtype=bool)
    clicks = sim.click.sample(relevance, mask, rng)
    train, test = [], []
    for u_n, user in enumerate(users):
        history = []
        for k in range(sim.lists_per_user):
            s = u_n * sim.lists_per_user + k
            d = {"user": user, "items": items[s].tolist(), "labels": clicks[s], "scores": scores[s],
                 "relevance": relevance[s], "history": list(history)}
            (test if k == sim.lists_per_user - 1 else train).append(d)
            history.append((items[s].tolist(), clicks[s]))
    item_vocab, cat_vocab = _vocabularies(train, genre)
    user_index = {u: n for n, u in enumerate(users)}
    meta = {"regime": "simulated", "n_items": len(item_vocab) + 2, "n_cats": len(cat_vocab) + 2,
            "n_users": len(users), "click": asdict(sim.click)}
    info = {**meta, "dataset": dataset.name, "config": asdict(cfg), "simulator": simulator_record(sim),
            "train_lists": len(train), "test_lists": len(test), "click_rate": float(clicks.mean()),
            "mean_relevance": float(relevance.mean())}
    return ListSplits(_assemble(train, item_vocab, cat_vocab, genre, cfg, user_index, meta),
                      _assemble(test, item_vocab, cat_vocab, genre, cfg, user_index, meta), info)


def simulator_record(sim: SimulatorConfig) -> dict:
    return {f.name: (asdict(getattr(sim, f.name)) if f.name == "click" else getattr(sim, f.name)) for f in fields(sim)}


def with_beta(sim: SimulatorConfig, beta: float) -> SimulatorConfig:
    """The same simulator (same seeds, same exposures) with another comparison strength."""
    return replace(sim, click=replace(sim.click, beta=beta))


def _ml100k_installed() -> bool:
    from tenfold.data.movielens import recbole_ml100k_dir

    return recbole_ml100k_dir() is not None


register_dataset(DatasetSpec(
    name="ml-100k-lists", source="installed package or user path",
    size="~10k exposure lists of 10 from 100,000 ratings (943 users)",
    licence="GroupLens research licence (via recbole's MovieLens-100K)",
    loader="tenfold.data.lists:build_logged_lists",
    description="Logged-label re-ranking lists: consecutive ratings per user, label rating >= 4, history = "
                "earlier lists with labels, order from our MF initial ranker.",
    available=_ml100k_installed))

register_dataset(DatasetSpec(
    name="ml-100k-clicksim", source="generated",
    size="943 users x 8 lists of 10 (configurable)",
    licence="derived from MovieLens-100K (GroupLens research licence)",
    loader="tenfold.data.lists:build_simulated_lists",
    description="Simulated exposures and clicks: MF ground truth fit on ML-100K, PBM (1/pos)^eta observation, "
                "cascade stop, comparison effect beta. Synthetic clicks.",
    available=_ml100k_installed))
