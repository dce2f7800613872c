"""RoPE transformers vs formula evaluation: measuring the constant-depth limit (arXiv 2411.07602)."""

from tenfold.rope.model import (
    POSITIONS,
    FormulaTransformer,
    ModelConfig,
    alibi_slopes,
    apply_rope,
    default_loops,
    rope_angles,
    rope_scores,
)
from tenfold.rope.tasks import (
    ENCODINGS,
    TASKS,
    Instance,
    dataset,
    depth,
    encode,
    evaluate,
    generate,
    intermediate_values,
    parse,
    random_formula,
    read_jsonl,
    size,
    split,
    write_jsonl,
)
from tenfold.rope.training import TrainConfig, accuracy, train_model
from tenfold.rope.vocab import Vocab

__all__ = [
    "ENCODINGS", "POSITIONS", "TASKS", "FormulaTransformer", "Instance", "ModelConfig", "TrainConfig", "Vocab",
    "accuracy", "alibi_slopes", "apply_rope", "dataset", "default_loops", "depth", "encode", "evaluate", "generate",
    "intermediate_values", "parse", "random_formula", "read_jsonl", "rope_angles", "rope_scores", "size", "split",
    "train_model", "write_jsonl",
]
