"""RoPE transformers vs formula evaluation: the depth a fixed-width model needs, by formula size (arXiv 2411.07602)."""

from tenfold.rope.model import (
    POSITIONS,
    FormulaTransformer,
    ModelConfig,
    alibi_slopes,
    apply_rope,
    rope_angles,
    rope_scores,
)
from tenfold.rope.tasks import (
    ENCODINGS,
    FAMILIES,
    TASKS,
    Instance,
    Splits,
    check_disjoint,
    depth,
    encode,
    evaluate,
    generate,
    make_splits,
    overlap,
    parse,
    postfix_values,
    read_jsonl,
    size,
    sized_formula,
    write_jsonl,
)
from tenfold.rope.training import (
    Encoded,
    TrainConfig,
    answer_accuracy,
    chain_accuracy,
    encode_split,
    greedy_accuracy,
    train_model,
)
from tenfold.rope.vocab import Vocab

__all__ = [
    "ENCODINGS", "FAMILIES", "POSITIONS", "TASKS", "Encoded", "FormulaTransformer", "Instance", "ModelConfig", "Splits",
    "TrainConfig", "Vocab", "alibi_slopes", "answer_accuracy", "apply_rope", "chain_accuracy", "check_disjoint", "depth",
    "encode", "encode_split", "evaluate", "generate", "greedy_accuracy", "make_splits", "overlap", "parse",
    "postfix_values", "read_jsonl", "rope_angles", "rope_scores", "size", "sized_formula", "train_model", "write_jsonl",
]
