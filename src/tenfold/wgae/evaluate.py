"""Evaluation protocol: 85/5/10 link split (checked for overlap), link AUC/AP, k-means clustering (ACC
with Hungarian matching, NMI), node classification, topic recovery against known topics, and topic
coherence (NPMI of each topic's top words over the corpus's documents)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tenfold.core.errors import InputError
from tenfold.data.planetoid import DocumentNetwork


@dataclass(frozen=True)
class LinkSplit:
    """Undirected (2, E) arrays with i < j. Negatives are non-edges of the *full* graph, so they never
    collide with any positive (test positives included); val and test negatives are disjoint."""

    train: np.ndarray
    val_pos: np.ndarray
    val_neg: np.ndarray
    test_pos: np.ndarray
    test_neg: np.ndarray


@dataclass
class LinkModel:
    """A fitted model as the evaluation sees it: a node embedding and a link scorer."""

    name: str
    embedding: np.ndarray  # (N, d)
    score: Callable[[np.ndarray], np.ndarray]  # (2, P) pairs -> scores
    best_epoch: int = -1
    extra: dict | None = None
    val_auc: float = float("nan")  # validation AUC of the kept state (what model selection saw)


def split_links(net: DocumentNetwork, val: float = 0.05, test: float = 0.10, seed: int = 0) -> LinkSplit:
    """Kipf's mask_test_edges protocol: hold out val/test fractions of the links, sample equal numbers of negatives."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise InputError(f"val and test fractions must be in [0, 1) with val + test < 1, got {val}, {test}")
    e, n = net.n_edges, net.n_nodes
    n_val, n_test = int(np.floor(e * val)), int(np.floor(e * test))
    if e < 10 or n_val + n_test == 0:
        raise InputError(f"the network has {e} links: a link split needs at least 10 (and val/test fractions > 0)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(e)
    test_idx, val_idx, train_idx = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    existing = set((net.edges[0] * n + net.edges[1]).tolist())
    need = n_val + n_test
    if n * (n - 1) // 2 - e < need:
        raise InputError("the graph is too dense to draw enough non-edge negatives")
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < need:
        a, b = rng.integers(0, n, size=2 * need), rng.integers(0, n, size=2 * need)
        for x, y in zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True):
            key = x * n + y
            if x != y and key not in existing and key not in seen:
                seen.add(key)
                chosen.append(key)
                if len(chosen) == need:
                    break
    neg = np.array(chosen, dtype=np.int64)
    neg = np.stack([neg // n, neg % n])
    return LinkSplit(net.edges[:, train_idx], net.edges[:, val_idx], neg[:, :n_val], net.edges[:, test_idx],
                     neg[:, n_val:])


def auc_ap(pos_scores: np.ndarray, neg_scores: np.ndarray) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    y = np.r_[np.ones(len(pos_scores)), np.zeros(len(neg_scores))]
    s = np.r_[pos_scores, neg_scores]
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def cluster_accuracy(labels: np.ndarray, pred: np.ndarray) -> float:
    """Best one-to-one matching of predicted clusters to labels (Hungarian), as a fraction correct."""
    from scipy.optimize import linear_sum_assignment

    k = int(max(labels.max(), pred.max())) + 1
    table = np.zeros((k, k), dtype=np.int64)
    np.add.at(table, (pred, labels), 1)
    r, c = linear_sum_assignment(-table)
    return float(table[r, c].sum() / len(labels))


def clustering_scores(embedding: np.ndarray, labels: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """k-means (k = number of classes) on the embedding: (ACC, NMI)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    k = len(np.unique(labels))
    pred = KMeans(k, n_init=10, random_state=seed).fit_predict(embedding)
    return cluster_accuracy(labels, pred), float(normalized_mutual_info_score(labels, pred))


def classification_accuracy(embedding: np.ndarray, labels: np.ndarray, train_fraction: float = 0.2, seed: int = 0) -> float:
    """Logistic regression on a stratified train fraction of the nodes; accuracy on the rest."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x = StandardScaler().fit_transform(embedding)
    xtr, xte, ytr, yte = train_test_split(x, labels, train_size=train_fraction, random_state=seed, stratify=labels)
    return float(LogisticRegression(max_iter=2000).fit(xtr, ytr).score(xte, yte))


def topic_match(learned: np.ndarray, true: np.ndarray) -> float:
    """Mean over true topics of the best cosine with any learned topic (columns are topics)."""
    a = true / np.maximum(np.linalg.norm(true, axis=0, keepdims=True), 1e-12)
    b = learned / np.maximum(np.linalg.norm(learned, axis=0, keepdims=True), 1e-12)
    return float((a.T @ b).max(1).mean())


def random_topic_match(true: np.ndarray, n_topics: int, eta: float, seed: int = 0) -> float:
    """topic_match of topics drawn from the Dir(eta) prior: the chance level."""
    rng = np.random.default_rng(seed)
    g = np.maximum(rng.gamma(eta, size=(true.shape[0], n_topics)), 1e-300)
    return topic_match(g / g.sum(0, keepdims=True), true)


def unigram_topic_match(net: DocumentNetwork, true: np.ndarray) -> float:
    """topic_match when every topic is the corpus word frequency: what a model scores that learned only
    how often each word occurs (on sparse true topics this beats random prior draws by far)."""
    freq = np.bincount(net.cols, weights=net.vals, minlength=net.n_words)
    return topic_match(freq[:, None], true)


def split_overlap(net: DocumentNetwork, split: LinkSplit) -> dict[str, int]:
    """Counts that must all be zero: held-out links in the training graph, negatives that are links."""
    n = net.n_nodes

    def keys(a: np.ndarray) -> set[int]:
        return set((a[0] * n + a[1]).tolist())

    train, val, test, links = keys(split.train), keys(split.val_pos), keys(split.test_pos), keys(net.edges)
    negs = keys(split.val_neg) | keys(split.test_neg)
    return {"train_test": len(train & test), "train_val": len(train & val), "val_test": len(val & test),
            "negatives_that_are_links": len(negs & links), "val_neg_test_neg": len(keys(split.val_neg)
                                                                                   & keys(split.test_neg))}


def top_words(phi: np.ndarray, top: int = 10) -> np.ndarray:
    """(K, top) word ids, most probable first, per topic (columns of phi)."""
    return np.argsort(-phi, axis=0)[:top].T


def npmi_coherence(phi: np.ndarray, net: DocumentNetwork, top: int = 10) -> np.ndarray:
    """Per-topic NPMI (Bouma 2009; Lau et al. 2014): the mean over pairs of a topic's `top` words of
    log(p(wi, wj) / (p(wi) p(wj))) / -log p(wi, wj), with document co-occurrence probabilities over the
    network's documents; a pair that never co-occurs scores -1."""
    import scipy.sparse as sp

    if phi.shape[0] != net.n_words:
        raise InputError(f"topics have {phi.shape[0]} words but the network has {net.n_words}")
    docs = sp.csr_matrix((np.ones(len(net.rows)), (net.rows, net.cols)), shape=(net.n_nodes, net.n_words))
    docs.data[:] = 1.0
    out = []
    for words in top_words(phi, top):
        d = docs[:, words].toarray()
        joint = d.T @ d / net.n_nodes  # (top, top)
        p = np.diag(joint)
        i, j = np.triu_indices(len(words), 1)
        pij = joint[i, j]
        with np.errstate(divide="ignore", invalid="ignore"):
            val = np.where(pij > 0, np.log(pij / (p[i] * p[j])) / -np.log(pij), -1.0)
        val = np.where(pij >= 1.0, 1.0, val)  # words in every document: perfectly associated
        out.append(float(val.mean()))
    return np.array(out)
