"""Online gradient-based plasticity: eligibility traces derived automatically from a step function."""

from ._describe import describe
from ._learner import Learner, LearnerState
from ._loop import StreamCarry, value_and_grad
from ._modes import MODES, Mode
from ._plan import TracePlan, parameter_names, plan_traces
from ._signal import random_feedback
from ._stream import Stream

__all__ = [
    "MODES",
    "Learner",
    "LearnerState",
    "Mode",
    "Stream",
    "StreamCarry",
    "TracePlan",
    "describe",
    "parameter_names",
    "plan_traces",
    "random_feedback",
    "value_and_grad",
]
