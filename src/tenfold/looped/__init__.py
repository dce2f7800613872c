"""Linear looped transformers that do multi-step gradient descent in context (arXiv 2410.11268)."""

from tenfold.looped.baselines import GradientDescent, LeastSquares, PreconditionedGD, tune_step_size
from tenfold.looped.convergence import (
    gd_rate,
    iteration_rate,
    log_error_slope,
    paper_rate,
    prompt_hessians,
    theory_step_size,
)
from tenfold.looped.model import (
    LinearLoopedTransformer,
    gd_construction,
    implicit_weights,
    learned_preconditioner,
    lsa,
)
from tenfold.looped.reference import gd_predict, gd_weights, least_squares_predict, relative_error
from tenfold.looped.tasks import Prompts, TaskConfig, embed, load_prompts, sample_prompts, task_covariance
from tenfold.looped.training import TrainConfig, train_model

__all__ = [
    "GradientDescent", "LeastSquares", "LinearLoopedTransformer", "PreconditionedGD", "Prompts", "TaskConfig",
    "TrainConfig", "embed", "gd_construction", "gd_predict", "gd_rate", "gd_weights", "implicit_weights",
    "iteration_rate", "learned_preconditioner", "least_squares_predict", "load_prompts", "log_error_slope", "lsa",
    "paper_rate", "prompt_hessians", "relative_error", "sample_prompts", "task_covariance", "theory_step_size",
    "train_model", "tune_step_size",
]
