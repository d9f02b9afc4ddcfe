"""Online gradient-based plasticity: eligibility traces derived automatically from a step function."""

from ._traces import MODES, TracePlan, plan_traces, value_and_grad

__all__ = ["MODES", "TracePlan", "plan_traces", "value_and_grad"]
