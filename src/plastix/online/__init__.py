"""Online gradient-based plasticity: eligibility traces derived automatically from a step function."""

from ._describe import describe
from ._learner import Learner, LearnerState
from ._loop import StreamCarry, value_and_grad
from ._modes import MODES, Mode
from ._plan import TracePlan, parameter_names, plan_traces
from ._rule import Cost, Rule, rule_cost
from ._search import Found, search_rules
from ._signal import random_feedback
from ._stream import Stream

__all__ = [
    "MODES",
    "Cost",
    "Found",
    "Learner",
    "LearnerState",
    "Mode",
    "Rule",
    "Stream",
    "StreamCarry",
    "TracePlan",
    "describe",
    "parameter_names",
    "plan_traces",
    "random_feedback",
    "rule_cost",
    "search_rules",
    "value_and_grad",
]
