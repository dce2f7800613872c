"""Linear looped transformers that do multi-step gradient descent in context (arXiv 2410.11268)."""

from tenfold.looped.baselines import GradientDescent, LeastSquares, PreconditionedGD, tune_step_size
from tenfold.looped.convergence import effective_condition, error_threshold, theory_step_size
from tenfold.looped.model import (
    LinearLoopedTransformer,
    LinearMultiLayerTransformer,
    gd_construction,
    implicit_weights,
    lsa,
)
from tenfold.looped.reference import gd_predict, gd_weights, least_squares_predict, relative_error
from tenfold.looped.tasks import Prompts, TaskConfig, embed, load_prompts, sample_prompts, task_covariance
from tenfold.looped.training import TrainConfig, train_model

__all__ = [
    "GradientDescent", "LeastSquares", "LinearLoopedTransformer", "LinearMultiLayerTransformer", "PreconditionedGD",
    "Prompts", "TaskConfig", "TrainConfig", "effective_condition", "embed", "error_threshold", "gd_construction",
    "gd_predict", "gd_weights", "implicit_weights", "least_squares_predict", "load_prompts", "lsa", "relative_error",
    "sample_prompts", "task_covariance", "theory_step_size", "train_model", "tune_step_size",
]
