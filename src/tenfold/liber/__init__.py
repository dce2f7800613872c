"""LIBER (arXiv 2411.14713): lifelong user behaviour modelling with an LLM, incrementally.

UBSP (`partition`) cuts each user's stream into closed partitions + an open cache; UIL (`interests`)
summarises each closed partition once, in a cascade, through a cached `TextGenerator` (`llm`), as
text plus structured fields; UIF (`fusion`) encodes both and fuses them with attention into a dense
field for any CTR backbone (`backbones`). `freshness` counts what keeping summaries fresh costs
(calls vs staleness). Heavy libraries (torch, transformers, sklearn) load only when those modules are used.
"""

from __future__ import annotations

from tenfold.liber.interests import (
                               TEMPLATES,
                               InterestFields,
                               InterestRecord,
                               ItemCatalog,
                               PromptTemplate,
                               learn_interests,
                               split_answer,
                               summary_prompt,
)
from tenfold.liber.llm import (
                               CachedGenerator,
                               GenerationCache,
                               OpenAIGenerator,
                               RuleSummarizer,
                               TextGenerator,
                               TransformersGenerator,
                               make_generator,
)
from tenfold.liber.partition import (
                               AllRule,
                               AnyRule,
                               Behavior,
                               CountRule,
                               InterestShiftRule,
                               Partition,
                               StreamingPartitioner,
                               TimeWindowRule,
                               parse_rule,
                               partition_history,
                               usable_partitions,
)

__all__ = [
    "AllRule", "AnyRule", "Behavior", "CachedGenerator", "CountRule", "GenerationCache", "InterestFields",
    "InterestRecord",
    "InterestShiftRule", "ItemCatalog", "OpenAIGenerator", "Partition", "PromptTemplate", "RuleSummarizer",
    "StreamingPartitioner", "TEMPLATES", "TextGenerator", "TimeWindowRule", "TransformersGenerator",
    "learn_interests", "make_generator", "parse_rule", "partition_history", "split_answer", "summary_prompt",
    "usable_partitions",
]
