"""Online gradient-based plasticity: eligibility traces derived automatically from a step function."""

from ._describe import describe
from ._learner import Learner, LearnerState
from ._stream import Stream
from ._traces import MODES, StreamCarry, TracePlan, plan_traces, random_feedback, value_and_grad

__all__ = [
    "MODES",
    "Learner",
    "LearnerState",
    "Stream",
    "StreamCarry",
    "TracePlan",
    "describe",
    "plan_traces",
    "random_feedback",
    "value_and_grad",
]
