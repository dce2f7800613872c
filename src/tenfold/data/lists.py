"""Exposure lists with list-level feedback for re-ranking (RELIFE), in two regimes never mixed:

* **logged**: lists cut from real ratings (MovieLens-100K from the installed recbole wheel, or any
  RecBole atomic-file folder): consecutive interactions per user, label rating >= 4, history = the
  user's earlier lists with their 0/1 labels, candidate order from an initial ranker (our own matrix
  factorisation) trained on the earliest lists of each user only. Ratings carry no display
  position, so their propensity is 1.
* **simulated** (synthetic clicks): a frozen ground-truth relevance r(u, i) (MF fit on all ratings);
  exposures ranked by an initial ranker that sees logit r with a persistent per-(user, genre) error
  (it misjudges each user's taste for each genre the same way in all of that user's lists, so the
  clicked *and* unclicked history reveals it) plus fresh noise; clicks from `ClickModel`: position-based
  observation (1/pos)^eta, a cascade stop after a click, and a within-list **substitution** effect
  whose strength beta_u is a trait of the user (the same in all of that user's lists):

      logit r'_j = logit r_j - beta_u * max{ r_l : l shown above j, genre(l) = genre(j) }

  A same-genre item shown above j satisfies part of the demand j would have met, in proportion to
  how attractive it was. The effect depends on the displayed order, so it changes which order is
  best (spread the genres for a user with a large beta_u, sort by r for beta_u = 0), and a user's
  earlier lists reveal beta_u through which shadowed items were clicked.

Per user, lists are in time order; the last lists are test, the one before them validation, the rest
training (logged: after the earliest lists that trained the initial ranker). History = the user's
previous `history_lists` exposed lists with their logged 0/1 feedback. Lists are padded to
`list_len`; item index 0 is padding and 1 the shared cold-start item (any item not seen in re-ranker
training); genre index 0 is padding and 1 "unknown".

Arrays a re-ranker may read are `OBSERVED`; `TARGETS` are what training may use (logged labels or
clicks, their known examination propensity, the simulator's intent probability r' of each displayed
item); `HIDDEN` (relevance, beta_u, the Bayes posterior of beta_u) are the simulator's own and are used
only to evaluate and to build the oracles.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from tenfold.core.errors import InputError, SchemaError
from tenfold.core.io import atomic_write_json, load_tensors, read_json, save_tensors
from tenfold.data.registry import DatasetSpec, register_dataset

PAD, COLD = 0, 1
OBSERVED = ("items", "cats", "scores", "mask", "hist_items", "hist_cats", "hist_scores", "hist_labels", "hist_mask")
TARGETS = ("labels", "propensity", "intent")
HIDDEN = ("relevance", "beta", "beta_history")
_ARRAYS = ("user",) + OBSERVED + TARGETS + HIDDEN
SPLITS = ("train", "val", "test")
# sizes beyond these are refused at once (a list of 10 with 3-5 history lists is the lineage's setting)
MAX_LIST_LEN, MAX_HISTORY_LISTS, MAX_LISTS_PER_USER, MAX_USERS = 200, 50, 1000, 10_000_000
MAX_EPOCHS, MAX_FACTOR, MAX_SCALE = 10_000, 100, 100.0


def _number_in(name: str, value: float, lo: float, hi: float) -> None:
    """A finite float in [lo, hi] (nan and inf refused), else an InputError naming the setting."""
    if not (math.isfinite(value) and lo <= value <= hi):
        raise InputError(f"{name} must be a number in [{lo:g}, {hi:g}], got {value}")


@dataclass(frozen=True)
class ListConfig:
    """How lists are cut. list_len 10 and label rating >= 4 follow LibRerank/KAR (research note 2.4, 4.4)."""

    list_len: int = 10
    history_lists: int = 4
    min_list_len: int = 2
    label_threshold: float = 4.0
    ranker_fraction: float = 0.3  # earliest lists of each user train the initial ranker only
    ranker_dim: int = 16
    ranker_epochs: int = 100
    max_users: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.list_len <= MAX_LIST_LEN:
            raise InputError(f"list_len must be from 2 to {MAX_LIST_LEN}, got {self.list_len}")
        if not 0 <= self.history_lists <= MAX_HISTORY_LISTS:
            raise InputError(f"history_lists must be from 0 to {MAX_HISTORY_LISTS}, got {self.history_lists}")
        if not 1 <= self.min_list_len <= self.list_len:
            raise InputError(f"min_list_len must be in [1, list_len={self.list_len}], got {self.min_list_len}")
        if not (math.isfinite(self.ranker_fraction) and 0 < self.ranker_fraction < 1):
            raise InputError(f"ranker_fraction must be in (0, 1), got {self.ranker_fraction}")
        _number_in("label_threshold", self.label_threshold, -1e6, 1e6)
        if not (1 <= self.ranker_dim <= 1024 and 1 <= self.ranker_epochs <= MAX_EPOCHS):
            raise InputError(f"ranker_dim must be from 1 to 1024 and ranker_epochs from 1 to {MAX_EPOCHS}, "
                             f"got {self.ranker_dim}, {self.ranker_epochs}")
        if self.max_users is not None and not 1 <= self.max_users <= MAX_USERS:
            raise InputError(f"max_users must be from 1 to {MAX_USERS}, got {self.max_users}")


# ---------------------------------------------------------------- the click model

def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def substitution_intent(r: np.ndarray, cats: np.ndarray, mask: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Context intent r' (N, L) of lists shown in the given order; padded positions get 0.

    logit r'_j = logit r_j - beta_u * max{r_l : l < j, cats_l = cats_j} (0 when no same-genre item is above).
    """
    n, length = r.shape
    rows = np.arange(n)
    best = np.zeros((n, int(cats.max(initial=0)) + 1))  # best r shown so far, per genre
    out = np.zeros_like(r, dtype=np.float64)
    beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), (n,))
    for j in range(length):
        above = best[rows, cats[:, j]]
        out[:, j] = np.where(mask[:, j], _sigmoid(_logit(r[:, j]) - beta * above), 0.0)
        best[rows, cats[:, j]] = np.where(mask[:, j], np.maximum(above, r[:, j]), above)
    return out


def greedy_order(r: np.ndarray, cats: np.ndarray, mask: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The oracle's order (N, L) under substitution strength beta: fill positions top-down, each time with
    the item of highest context intent given the items already placed (padding last)."""
    n, length = r.shape
    rows = np.arange(n)
    best = np.zeros((n, int(cats.max(initial=0)) + 1))
    placed = np.zeros((n, length), dtype=bool)
    order = np.zeros((n, length), dtype=np.int64)
    logit = _logit(r)
    beta = np.broadcast_to(np.asarray(beta, dtype=np.float64), (n,))
    for j in range(length):
        value = np.where(mask, logit - beta[:, None] * best[rows[:, None], cats], -1e30)  # padding after items
        k = np.where(placed, -np.inf, value).argmax(1)
        order[:, j] = k
        placed[rows, k] = True
        c = cats[rows, k]
        best[rows, c] = np.where(mask[rows, k], np.maximum(best[rows, c], r[rows, k]), best[rows, c])
    return order


@dataclass(frozen=True)
class ClickModel:
    """Position-based observation, cascade stopping and the per-user substitution effect.

    P(examine position j | still browsing) = (1/j)^eta (allRank BaseCascadeModel); an examined item is
    clicked with its context intent r'_j (`substitution_intent`); after a click the user stops with
    probability `stop` (stop=1: cascade model, stop=0: pure PBM).
    """

    eta: float = 1.0
    stop: float = 0.5

    def __post_init__(self) -> None:
        _number_in("click model eta", self.eta, 0, MAX_SCALE)
        _number_in("click model stop probability", self.stop, 0, 1)

    def observation(self, n: int) -> np.ndarray:
        """theta_j = (1/j)^eta for positions j = 1..n."""
        return (1.0 / np.arange(1, n + 1)) ** self.eta

    def click_probabilities(self, intent: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Exact marginal P(click at j) of lists shown in order: reach_{j+1} = reach_j (1 - stop theta_j r'_j)."""
        theta = self.observation(intent.shape[-1])
        reach = np.ones(intent.shape[0])
        out = np.zeros_like(intent, dtype=np.float64)
        for j in range(intent.shape[-1]):
            p = np.where(mask[:, j], theta[j] * intent[:, j], 0.0)
            out[:, j] = reach * p
            reach = reach * (1.0 - self.stop * p)
        return out

    def sample(self, intent: np.ndarray, mask: np.ndarray, examine_u: np.ndarray, click_u: np.ndarray,
               stop_u: np.ndarray) -> np.ndarray:
        """Clicks (..., L) in {0, 1} from given uniforms (same shape), so two orders can share their randomness."""
        theta = self.observation(intent.shape[-1])
        reached = np.ones(intent.shape[:-1], dtype=bool)
        clicks = np.zeros(intent.shape)
        for j in range(intent.shape[-1]):
            click = reached & (examine_u[..., j] < theta[j]) & (click_u[..., j] < intent[..., j]) & mask[..., j]
            clicks[..., j] = click
            reached &= ~(click & (stop_u[..., j] < self.stop))
        return clicks

    def propensity(self, clicks: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Known P(examine j | clicks above) = theta_j (1 - stop)^(clicks above j): c_j / propensity_j is
        unbiased for the intent r'_j (the stop coin is independent of everything below)."""
        theta = self.observation(clicks.shape[-1])
        above = np.cumsum(clicks, axis=-1) - clicks
        return np.where(mask, theta * (1.0 - self.stop) ** above, 1.0)

    def log_likelihood(self, intent: np.ndarray, clicks: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """log P(clicks) (N,) of lists shown in order, summing over the unseen stop coins (forward pass
        over the states browsing / stopped)."""
        theta = self.observation(intent.shape[-1])
        browsing, stopped = np.ones(intent.shape[0]), np.zeros(intent.shape[0])
        for j in range(intent.shape[-1]):
            p = np.where(mask[:, j], theta[j] * intent[:, j], 0.0)
            c = clicks[:, j] > 0
            browsing, stopped = (np.where(c, browsing * p * (1 - self.stop), browsing * (1 - p)),
                                 np.where(c, browsing * p * self.stop, stopped))
        return np.log(np.maximum(browsing + stopped, 1e-300))


@dataclass(frozen=True)
class SimulatorConfig:
    """Simulator settings (all written into the result config).

    beta_u is 0 for half of the users and 2 * `beta` for the other half (drawn once per user), so
    `beta` is the population mean and the two kinds of users want different orders.
    """

    lists_per_user: int = 10
    test_lists: int = 2  # the last lists of each user; the one before them is validation
    beta: float = 2.0
    pool_factor: int = 2  # candidates drawn by popularity before the initial ranker picks list_len
    ranker_noise: float = 0.5  # std of the initial ranker's noise on logit r, fresh for every (list, item)
    taste_noise: float = 1.0  # std of the initial ranker's per-(user, genre) error, the same in all of a user's lists
    truth_sharpness: float = 0.3  # r = sigmoid(sharpness * MF logit); the ML-100K MF logit has std ~5
    click: ClickModel = field(default_factory=ClickModel)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.lists_per_user > MAX_LISTS_PER_USER:
            raise InputError(f"lists_per_user must be at most {MAX_LISTS_PER_USER}, got {self.lists_per_user}")
        if self.test_lists < 1 or self.lists_per_user < self.test_lists + 2:
            raise InputError(f"lists_per_user ({self.lists_per_user}) must leave at least one training and one "
                             f"validation list before the {self.test_lists} test list(s) of each user")
        _number_in("beta", self.beta, 0, MAX_SCALE)
        if not 1 <= self.pool_factor <= MAX_FACTOR:
            raise InputError(f"pool_factor must be from 1 to {MAX_FACTOR}, got {self.pool_factor}")
        _number_in("ranker_noise", self.ranker_noise, 0, MAX_SCALE)
        _number_in("taste_noise", self.taste_noise, 0, MAX_SCALE)
        _number_in("truth_sharpness", self.truth_sharpness, 1e-6, MAX_SCALE)

    def record(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "click"}, "click": asdict(self.click),
                "beta_u": f"0 or {2 * self.beta:g}, each with probability 1/2 (per user)"}


# ---------------------------------------------------------------- lists

@dataclass
class ListData:
    """Padded lists; candidates are in initial-ranker (display) order, position 1 first.

    user (N,); items/cats/scores/mask and the targets (N, L); hist_* (N, H, L) with the most recent list
    last; relevance (N, L), beta and beta_history (N,) only in the simulated regime (zeros otherwise).
    """

    user: np.ndarray
    items: np.ndarray
    cats: np.ndarray
    scores: np.ndarray
    mask: np.ndarray
    hist_items: np.ndarray
    hist_cats: np.ndarray
    hist_scores: np.ndarray
    hist_labels: np.ndarray
    hist_mask: np.ndarray
    labels: np.ndarray
    propensity: np.ndarray
    intent: np.ndarray
    relevance: np.ndarray
    beta: np.ndarray
    beta_history: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.user)

    def select(self, idx: np.ndarray) -> ListData:
        return ListData(**{k: getattr(self, k)[idx] for k in _ARRAYS}, meta=dict(self.meta))

    def batch(self, idx: np.ndarray | None = None, target: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """What a re-ranker sees (OBSERVED arrays as tensors), plus `target` (N, L) for training if given."""
        idx = np.arange(len(self)) if idx is None else idx
        out = {k: torch.from_numpy(np.ascontiguousarray(getattr(self, k)[idx])) for k in OBSERVED}
        if target is not None:
            out["target"] = torch.from_numpy(np.ascontiguousarray(target[idx], dtype=np.float32))
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
        if not path.is_file():
            raise InputError(f"{path} is missing: rebuild the lists with `tenfold relife build-lists` or `simulate`")
        t = load_tensors(path)
        missing = [k for k in _ARRAYS if k not in t]
        if missing:
            raise SchemaError(f"{path} lacks list arrays {missing}: rebuild it with `tenfold relife build-lists`")
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        data = cls(**{k: t[k].numpy() for k in _ARRAYS}, meta=meta)
        n, length = data.items.shape
        if data.hist_items.ndim != 3 or data.hist_items.shape[0] != n or data.hist_items.shape[2] != length:
            raise SchemaError(f"{path}: history arrays do not match the candidate arrays: rebuild the lists")
        return data


@dataclass
class ListSplits:
    """train, validation and test lists of one regime plus what built them (vocabulary sizes, seeds, settings)."""

    train: ListData
    val: ListData
    test: ListData
    info: dict

    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        for name in SPLITS:
            getattr(self, name).save(folder / f"{name}.safetensors")
        atomic_write_json(folder / "lists.json", self.info)
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> ListSplits:
        folder = Path(folder)
        if not (folder / "lists.json").is_file():
            raise InputError(f"{folder} holds no lists.json: build lists with `tenfold relife build-lists --out {folder}`")
        return cls(*(ListData.load(folder / f"{name}.safetensors") for name in SPLITS), read_json(folder / "lists.json"))


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
    out = []
    for user, rows in dataset.inter.groupby("user_id", sort=True).indices.items():
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


def _vocabularies(train_items: list, genre: dict) -> tuple[dict, dict]:
    """Item vocabulary from re-ranker training lists (candidates and history); genres from the item table."""
    item_vocab = {i: n + 2 for n, i in enumerate(sorted(set(train_items)))}
    cats = sorted({g for g in genre.values() if g})
    return item_vocab, {c: n + 2 for n, c in enumerate(cats)}


def _order_by(scores: np.ndarray) -> np.ndarray:
    """Descending order of scores, ties broken by original position (stable)."""
    return np.argsort(-np.asarray(scores), kind="stable")


def _stack_lists(rows: list[dict], length: int) -> dict[str, np.ndarray]:
    """Ragged per-list dicts (raw ids, cat ids, scores, labels, ...) into padded (n, L) arrays."""
    n = len(rows)
    out = {"items": np.full((n, length), "", dtype=object), "cats": np.zeros((n, length), dtype=np.int64),
           "mask": np.zeros((n, length), dtype=bool)}
    for k in ("scores", "labels", "propensity", "intent", "relevance"):
        out[k] = np.zeros((n, length), dtype=np.float64)
    for s, d in enumerate(rows):
        m = len(d["items"])
        out["items"][s, :m] = d["items"]
        out["mask"][s, :m] = True
        for k in ("cats", "scores", "labels", "propensity", "intent", "relevance"):
            out[k][s, :m] = d[k]
    return out


def _assemble(lists: dict[str, np.ndarray], owner: np.ndarray, history: int, item_vocab: dict,
              beta: np.ndarray, beta_history: np.ndarray, meta: dict) -> ListData:
    """ListData for every list of `lists` (all lists of all users, each user's lists consecutive and in
    time order, `owner` the user index of each): history = the owner's previous `history` lists."""
    n, length = lists["mask"].shape
    ids = np.vectorize(lambda i: item_vocab.get(i, COLD) if i != "" else PAD, otypes=[np.int64])(lists["items"])
    ids = np.where(lists["mask"], ids, PAD)
    first = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
    start = np.repeat(first, np.diff(np.r_[first, n]))  # index of the owner's first list
    hist = {"hist_items": np.zeros((n, history, length), dtype=np.int64),
            "hist_cats": np.zeros((n, history, length), dtype=np.int64),
            "hist_scores": np.zeros((n, history, length), dtype=np.float32),
            "hist_labels": np.zeros((n, history, length), dtype=np.float32),
            "hist_mask": np.zeros((n, history, length), dtype=bool)}
    for slot in range(history):
        src = np.arange(n) - (history - slot)  # slot history-1 is the most recent list
        ok = src >= start
        s = np.where(ok, src, 0)
        m = lists["mask"][s] & ok[:, None]
        hist["hist_items"][:, slot] = np.where(m, ids[s], PAD)
        hist["hist_cats"][:, slot] = np.where(m, lists["cats"][s], PAD)
        hist["hist_scores"][:, slot] = np.where(m, lists["scores"][s], 0.0)
        hist["hist_labels"][:, slot] = np.where(m, lists["labels"][s], 0.0)
        hist["hist_mask"][:, slot] = m
    f32 = {k: np.where(lists["mask"], lists[k], 0.0).astype(np.float32)
           for k in ("scores", "labels", "intent", "relevance")}
    return ListData(user=owner.astype(np.int64), items=ids, cats=np.where(lists["mask"], lists["cats"], PAD),
                    mask=lists["mask"], propensity=np.where(lists["mask"], lists["propensity"], 1.0).astype(np.float32),
                    beta=beta.astype(np.float32), beta_history=beta_history.astype(np.float32), meta=meta, **f32, **hist)


def _split(data: ListData, part: np.ndarray) -> tuple[ListData, ListData, ListData]:
    """part: 0 train, 1 validation, 2 test, -1 dropped (the initial ranker's lists)."""
    return tuple(data.select(np.flatnonzero(part == k)) for k in range(3))


def _cat_ids(items: list, genre: dict, cat_vocab: dict) -> list[int]:
    return [cat_vocab.get(genre.get(i, ""), 1) for i in items]


# ---------------------------------------------------------------- logged regime

def _plans(dataset, cfg: ListConfig) -> list[tuple[str, list[list[int]], int]]:
    """(user, lists of row indices, number of earliest lists reserved for the initial ranker)."""
    return [(user, chunks, min(max(1, round(len(chunks) * cfg.ranker_fraction)), len(chunks) - 1))
            for user, chunks in _user_chunks(dataset, cfg)]


def _rated(dataset):
    """The interactions table, which must carry ratings (labels are rating >= threshold)."""
    if "rating" not in dataset.inter.columns:
        raise InputError(f"{dataset.name}: lists need a 'rating' column in the .inter file (labels are rating >= threshold)")
    return dataset.inter


def fit_initial_ranker(dataset, cfg: ListConfig = ListConfig()) -> MFRanker:
    """The initial ranker: MF fit on each user's earliest `ranker_fraction` lists only (earlier data)."""
    inter = _rated(dataset)
    rows = np.array([r for _, chunks, k_rank in _plans(dataset, cfg) for c in chunks[:k_rank] for r in c])
    labels = (inter["rating"].to_numpy(dtype=float) >= cfg.label_threshold).astype(np.float32)
    return fit_mf(inter["user_id"].astype(str).to_numpy()[rows], inter["item_id"].astype(str).to_numpy()[rows],
                  labels[rows], dim=cfg.ranker_dim, epochs=cfg.ranker_epochs, seed=cfg.seed)


def build_logged_lists(dataset, cfg: ListConfig = ListConfig(), ranker: MFRanker | None = None) -> ListSplits:
    """Lists from real ratings: per user the earliest `ranker_fraction` lists train the initial ranker,
    the last list is test, the one before validation (users with at least four lists), the rest train
    the re-ranker; candidates are ordered by the initial ranker and every list keeps the earlier lists
    (including the initial ranker's) as history."""
    inter = _rated(dataset)
    genre = _genre_of(dataset)
    item_ids = inter["item_id"].astype(str).to_numpy()
    labels = (inter["rating"].to_numpy(dtype=float) >= cfg.label_threshold).astype(np.float64)
    plans = _plans(dataset, cfg)
    ranker = ranker or fit_initial_ranker(dataset, cfg)
    cat_vocab = _vocabularies([], genre)[1]
    rows, owner, part = [], [], []
    for u, (user, chunks, k_rank) in enumerate(plans):
        n = len(chunks)
        for k, chunk in enumerate(chunks):
            items = item_ids[chunk]
            scores = ranker.score(np.array([user]), items[None, :])[0]
            order = _order_by(scores) if k >= k_rank else np.arange(len(items))
            items = items[order].tolist()
            y = labels[chunk][order]
            rows.append({"items": items, "cats": _cat_ids(items, genre, cat_vocab), "scores": scores[order],
                         "labels": y, "propensity": np.ones(len(y)), "intent": np.zeros(len(y)),
                         "relevance": np.zeros(len(y))})
            owner.append(u)
            part.append(-1 if k < k_rank else 2 if k == n - 1 else 1 if (k == n - 2 and n - k_rank >= 3) else 0)
    part = np.array(part)
    if not (part == 0).any():
        raise InputError("no re-ranker training lists: users need at least three lists (use more data or a smaller list_len)")
    lists = _stack_lists(rows, cfg.list_len)
    seen = part <= 0  # training lists and the earlier lists they read as history
    train_items = lists["items"][seen][lists["mask"][seen]].tolist()
    item_vocab = _vocabularies(train_items, genre)[0]
    zeros = np.zeros(len(rows))
    meta = {"regime": "logged", "n_items": len(item_vocab) + 2, "n_cats": len(cat_vocab) + 2, "n_users": len(plans)}
    data = _assemble(lists, np.array(owner), cfg.history_lists, item_vocab, zeros, zeros, meta)
    train, val, test = _split(data, part)
    info = {**meta, "dataset": dataset.name, "config": asdict(cfg), "train_lists": len(train), "val_lists": len(val),
            "test_lists": len(test), "signal": "logged labels (rating >= threshold); propensity 1",
            "ranker": "matrix factorisation (BCE, full-batch Adam) on each user's earliest lists"}
    return ListSplits(train, val, test, info)


# ---------------------------------------------------------------- simulator regime

def fit_ground_truth(dataset, cfg: ListConfig = ListConfig()) -> MFRanker:
    """The simulator's frozen relevance model: MF fit on all ratings (label rating >= threshold)."""
    inter = _rated(dataset)
    labels = (inter["rating"].to_numpy(dtype=float) >= cfg.label_threshold).astype(np.float32)
    return fit_mf(inter["user_id"].astype(str).to_numpy(), inter["item_id"].astype(str).to_numpy(), labels,
                  dim=cfg.ranker_dim, epochs=cfg.ranker_epochs, seed=cfg.seed + 7919)


def posterior_beta(click: ClickModel, relevance: np.ndarray, cats: np.ndarray, mask: np.ndarray, clicks: np.ndarray,
                   owner: np.ndarray, history: int, beta_high: float) -> np.ndarray:
    """E[beta_u | the clicks of the previous `history` lists of the same user] (N,) under the two-point
    prior {0, beta_high} with equal weights: the best any model reading that history could know,
    given the true relevance and click model (used by the history oracle)."""
    n = len(owner)
    ll = [click.log_likelihood(substitution_intent(relevance, cats, mask, np.full(n, b)), clicks, mask)
          for b in (0.0, beta_high)]
    evidence = ll[1] - ll[0]
    first = np.r_[0, np.flatnonzero(np.diff(owner)) + 1]
    start = np.repeat(first, np.diff(np.r_[first, n]))
    total = np.zeros(n)
    for back in range(1, history + 1):
        src = np.arange(n) - back
        total += np.where(src >= start, evidence[np.maximum(src, 0)], 0.0)
    return beta_high * _sigmoid(total)


def build_simulated_lists(dataset, cfg: ListConfig = ListConfig(), sim: SimulatorConfig = SimulatorConfig(),
                          truth: MFRanker | None = None) -> ListSplits:
    """Exposures from a simulated initial ranker (logit r + a per-(user, genre) error + fresh noise) over
    popularity-sampled pools, clicks from `sim.click`. The exposures do not depend on `sim.beta` (the
    same seed gives the same lists for every beta; only the intents and clicks change).

    Per user `sim.lists_per_user` lists in time order: the last `sim.test_lists` are test, the one before
    validation, the rest training. `relevance`, `beta` and `beta_history` let any re-ranked order be
    scored exactly under the same click model and build the oracles.
    """
    inter = dataset.inter
    genre = _genre_of(dataset)
    truth = truth or fit_ground_truth(dataset, cfg)
    users = sorted(inter["user_id"].astype(str).unique().tolist())
    if cfg.max_users is not None:
        users = users[: cfg.max_users]
    counts = inter["item_id"].astype(str).value_counts()
    catalog = np.array(counts.index.tolist())
    length, T = cfg.list_len, sim.lists_per_user
    if len(catalog) < length:
        raise InputError(f"the catalogue has {len(catalog)} items, fewer than list_len={length}")
    pool = min(length * sim.pool_factor, len(catalog))
    logp = np.log(counts.to_numpy(dtype=float) / counts.sum())
    rng = np.random.default_rng(sim.seed)
    n = len(users) * T
    owner = np.repeat(np.arange(len(users)), T)
    raw_users = np.array(users)[owner]
    gumbel = logp[None, :] - np.log(-np.log(rng.random((n, len(catalog)))))
    cand = catalog[np.argpartition(-gumbel, pool - 1, axis=1)[:, :pool]]  # (n, pool) popularity-sampled
    logit = sim.truth_sharpness * truth.score(raw_users, cand)
    cat_vocab = _vocabularies([], genre)[1]
    cand_cats = np.array([_cat_ids(row, genre, cat_vocab) for row in cand.tolist()], dtype=np.int64)
    taste = sim.taste_noise * rng.standard_normal((len(users), len(cat_vocab) + 2))  # what the ranker misjudges
    noisy = (logit + taste[owner[:, None], cand_cats]  # the initial ranker: a noisy view of r
             + sim.ranker_noise * rng.standard_normal(cand.shape))
    top = np.argsort(-noisy, axis=1, kind="stable")[:, :length]
    items = np.take_along_axis(cand, top, 1)
    scores = np.take_along_axis(noisy, top, 1)
    relevance = _sigmoid(np.take_along_axis(logit, top, 1))
    cats = np.take_along_axis(cand_cats, top, 1)
    mask = np.ones_like(relevance, dtype=bool)
    beta_user = 2 * sim.beta * (rng.random(len(users)) < 0.5)
    beta = beta_user[owner]
    context = substitution_intent(relevance, cats, mask, beta)
    clicks = sim.click.sample(context, mask, rng.random(context.shape), rng.random(context.shape), rng.random(context.shape))
    lists = {"items": items.astype(object), "cats": cats, "mask": mask, "scores": scores, "labels": clicks,
             "propensity": sim.click.propensity(clicks, mask), "intent": context, "relevance": relevance}
    k = np.tile(np.arange(T), len(users))
    part = np.where(k >= T - sim.test_lists, 2, np.where(k == T - sim.test_lists - 1, 1, 0))
    item_vocab = _vocabularies(items[part == 0].ravel().tolist(), genre)[0]
    beta_hist = posterior_beta(sim.click, relevance, cats, mask, clicks, owner, cfg.history_lists, 2 * sim.beta)
    meta = {"regime": "simulated", "n_items": len(item_vocab) + 2, "n_cats": len(cat_vocab) + 2, "n_users": len(users),
            "click": asdict(sim.click), "beta_mean": sim.beta}
    train, val, test = _split(_assemble(lists, owner, cfg.history_lists, item_vocab, beta, beta_hist, meta), part)
    info = {**meta, "dataset": dataset.name, "config": asdict(cfg), "simulator": sim.record(),
            "train_lists": len(train), "val_lists": len(val), "test_lists": len(test),
            "click_rate": float(clicks.mean()), "mean_intent": float(context.mean()),
            "mean_relevance": float(relevance.mean())}
    return ListSplits(train, val, test, info)


def _ml100k_installed() -> bool:
    from tenfold.data.movielens import recbole_ml100k_dir

    return recbole_ml100k_dir() is not None


register_dataset(DatasetSpec(
    name="ml-100k-lists", source="installed package or user path",
    size="~10k exposure lists of 10 from 100,000 ratings (943 users)",
    licence="GroupLens research licence (via recbole's MovieLens-100K)",
    loader="tenfold.data.lists:build_logged_lists",
    description="Logged-label re-ranking lists: consecutive ratings per user, label rating >= 4, history = "
                "earlier lists with labels, order from our MF initial ranker; train / validation / test per user.",
    available=_ml100k_installed))

register_dataset(DatasetSpec(
    name="ml-100k-clicksim", source="generated",
    size="943 users x 10 lists of 10 (configurable)",
    licence="derived from MovieLens-100K (GroupLens research licence)",
    loader="tenfold.data.lists:build_simulated_lists",
    description="Simulated exposures and clicks: MF ground truth fit on ML-100K, PBM (1/pos)^eta observation, "
                "cascade stop, same-genre substitution with a per-user strength beta_u. Synthetic clicks.",
    available=_ml100k_installed))
