"""HSR-enhanced sparse attention (Chen et al. 2024, arXiv 2410.10165): an exact half-space reporting
index over keys, ReLU^alpha attention that scores only the keys the index cannot rule out, top-r
softmax attention with an error bound, a generation-time cache and a Hugging Face drop-in; beyond the
paper, an exact low-rank block index for real KV caches and a dump of a model's post-RoPE keys."""

from tenfold.hsr.attention import AttentionStats, TopRResult, relu_attention, softmax_attention_topr
from tenfold.hsr.cache import HSRKVCache, use_relu_attention, work_counts
from tenfold.hsr.index import HalfSpaceIndex, QueryStats
from tenfold.hsr.lowrank import LowRankBlockIndex

__all__ = ["AttentionStats", "HSRKVCache", "HalfSpaceIndex", "LowRankBlockIndex", "QueryStats", "TopRResult",
           "relu_attention", "softmax_attention_topr", "use_relu_attention", "work_counts"]
