"""HSR-enhanced sparse attention (Chen et al. 2024, arXiv 2410.10165): an exact half-space reporting
index over keys, ReLU^alpha attention that touches only the keys it reports, top-r softmax attention
with an error bound, a generation-time cache and a Hugging Face drop-in."""

from tenfold.hsr.attention import AttentionStats, TopRResult, relu_attention, softmax_attention_topr
from tenfold.hsr.cache import HSRKVCache, use_relu_attention
from tenfold.hsr.index import HalfSpaceIndex

__all__ = ["AttentionStats", "HSRKVCache", "HalfSpaceIndex", "TopRResult", "relu_attention",
           "softmax_attention_topr", "use_relu_attention"]
