"""Online gradient-based plasticity: eligibility traces derived automatically from a step function."""

from ._describe import describe
from ._learner import Learner, LearnerState
from ._traces import MODES, TracePlan, plan_traces, random_feedback, value_and_grad

__all__ = [
    "MODES",
    "Learner",
    "LearnerState",
    "TracePlan",
    "describe",
    "plan_traces",
    "random_feedback",
    "value_and_grad",
]
