"""Online rules as points of a space: which part of ``H`` each pair of state leaves keeps, which parameters carry
traces, and the dtype traces are stored in (issue #16).

A :class:`Rule` is a :class:`~plastix.online.Mode`, so it is accepted wherever a mode name is
(``value_and_grad``, ``Stream``, ``Learner``, ``describe``, ``plan_traces``). The four built-in modes are four
named rules (:meth:`Rule.named`). :func:`rule_cost` gives a rule's cost from the step's graph alone.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ._jacobians import StepJacobians
from ._modes import MODES, Mode, get_mode, neuron_block_of
from ._plan import bounded_plan

__all__ = ["DTYPES", "KINDS", "Cost", "Rule", "rule_cost"]

KINDS: dict[str, str] = {
    "full": "all of the block (as rtrl)",
    "neuron": "each neuron's own block, between leaves of one layer (as diagonal)",
    "local": "only the paths that map each neuron to itself (as eprop)",
    "none": "nothing",
}
"""What a pair of state leaves ``(a, b)`` keeps of ``H[a][b] = ds'_a/ds_b``."""

DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float16")
"""The dtypes traces may be stored in (``None``: the dtype they are computed in)."""

_HANDMADE = {"full": "rtrl", "neuron": "diagonal", "local": "eprop"}


def _kept_block(kind: str, jac: StepJacobians, a: int, b: int):
    if kind == "full":
        return jac.H[a][b]
    if kind == "neuron":
        return neuron_block_of(jac, a, b)
    if kind == "local":
        return jac.H_local[a][b]
    return None


def _check_pairs(pairs: tuple, n: int) -> None:
    bad = [pair for pair, _ in pairs if max(pair) >= n]
    if bad:
        raise ValueError(f"Rule(pairs=...): state pair {bad[0]} names no state leaf; the step has {n} state "
                         f"leaves, expected indices 0..{n - 1}")


def _keep_H(default: str, pairs: tuple, jac: StepJacobians):
    """The part of ``H`` a rule keeps: per pair its kind's block (``None`` where the kind keeps nothing)."""
    n = len(jac.H)
    _check_pairs(pairs, n)
    kinds = dict(pairs)
    return [[_kept_block(kinds.get((a, b), default), jac, a, b) for b in range(n)] for a in range(n)]


def _check_kind(kind, where: str) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        raise ValueError(f"Rule({where}): unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return kind


def _pairs(pairs) -> tuple:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    try:
        items = [tuple(item) for item in items]
    except TypeError:
        raise ValueError(f"Rule(pairs=...): expected a mapping {{(a, b): kind}} or pairs ((a, b), kind), got "
                         f"{pairs!r}") from None
    found = {}
    for item in items:
        if len(item) != 2:
            raise ValueError(f"Rule(pairs=...): expected ((a, b), kind) items, got {item!r}")
        pair, kind = item
        ok = isinstance(pair, tuple) and len(pair) == 2 and all(
            isinstance(i, int | np.integer) and not isinstance(i, bool) and i >= 0 for i in pair)
        if not ok:
            raise ValueError(f"Rule(pairs=...): a pair is (a, b), two state leaf indices >= 0 (H[a][b] = "
                             f"ds'_a/ds_b), got {pair!r}")
        pair = (int(pair[0]), int(pair[1]))
        if pair in found and found[pair] != kind:
            raise ValueError(f"Rule(pairs=...): state pair {pair} given twice, as {found[pair]!r} and {kind!r}")
        found[pair] = _check_kind(kind, f"pairs={{{pair}: ...}}")
    return tuple(sorted(found.items()))


def _untraced(untraced) -> tuple[str, ...]:
    names = (untraced,) if isinstance(untraced, str) else untraced
    try:
        names = tuple(names)
    except TypeError:
        raise ValueError(f"Rule(untraced=...): expected parameter names (plastix.online.parameter_names), got "
                         f"{untraced!r}") from None
    bad = [u for u in names if not isinstance(u, str) or not u]
    if bad:
        raise ValueError(f"Rule(untraced=...): expected parameter names (plastix.online.parameter_names), got "
                         f"{bad[0]!r}")
    return tuple(sorted(set(names)))


def _dtype(trace_dtype) -> str | None:
    if trace_dtype is None:
        return None
    try:
        name = trace_dtype if isinstance(trace_dtype, str) else jnp.dtype(trace_dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"Rule(trace_dtype=...): unknown dtype {trace_dtype!r}; expected None (the dtype traces "
                         f"are computed in) or one of {', '.join(DTYPES)}")
    return name


@dataclass(frozen=True, repr=False, init=False)
class Rule(Mode):
    """One online rule: ``G_t = H̃_t G_{t-1} + F̃_t`` with ``H̃`` kept per pair of state leaves, some parameters
    without traces, and traces stored in a chosen dtype. Frozen, hashable, equal by value; a :class:`Mode`.

    Args:
        H: the kind every pair of state leaves keeps unless ``pairs`` says otherwise (see :data:`KINDS`):
            ``"full"`` (all of ``H[a][b]``, as rtrl), ``"neuron"`` (each neuron's own block, as diagonal),
            ``"local"`` (paths from each neuron to itself only, as eprop) or ``"none"``.
        pairs: per pair overrides, ``{(a, b): kind}`` (or ``((a, b), kind)`` items) for ``H[a][b] = ds'_a/ds_b``
            with ``a``, ``b`` indices of the state's flat leaves (``s0``, ``s1``, ... of ``describe``).
        untraced: names of parameters (:func:`~plastix.online.parameter_names`) that carry no trace: they learn
            from their within-step gradient only (as ``drop=``).
        trace_dtype: ``None`` (traces are stored in the dtype they are computed in, that of the parameters) or
            one of :data:`DTYPES`: traces are rounded to it (to nearest, ties to even) after every step's update
            and stored so, the arithmetic stays in the working dtype; such traces advance step by step (not in
            chunks).
        bptt: the whole sequence differentiated (no traces): the rule of the ``"bptt"`` mode; the other fields
            keep their defaults.

    The fields are ``default_kind`` (the argument ``H``: a rule's ``H(jac)`` is, as for every mode, the part of
    ``H`` it keeps), ``pairs`` (sorted, without overrides equal to the default), ``untraced`` (sorted names),
    ``trace_dtype`` (a name or ``None``) and ``bptt``.

    Derived: ``layered`` (any ``"neuron"`` or ``"local"`` kind: a parameter's path through another layer is
    left to the learning signal, as in diagonal and eprop), ``exact`` (every pair ``"full"``, every parameter
    traced, no ``trace_dtype``; or ``bptt``), ``name`` (the built-in mode's name for the four named rules, else
    the description), ``summary``, and :attr:`handmade`.

    Raises:
        ValueError: an unknown kind, a malformed pair, a name that is not a string, an unknown dtype (one line
            each); an out-of-range pair or an unknown parameter name when the rule meets a step.

    Example:
        >>> rule = Rule("neuron", pairs={(0, 1): "full"}, untraced=["R"], trace_dtype="bfloat16")
        >>> str(rule)
        'H neuron, s0<-s1 full; untraced R; traces bfloat16'
        >>> plastix.online.value_and_grad(step, loss, rule)(params, state0, xs, targets)
    """

    name: str = field(init=False, default="", compare=False)
    keep_H: Any = field(init=False, default=None, compare=False)
    layered: bool = field(init=False, default=False, compare=False)
    exact: bool = field(init=False, default=False, compare=False)
    summary: str = field(init=False, default="", compare=False)
    default_kind: str = "full"
    pairs: tuple = ()
    untraced: tuple = ()
    trace_dtype: str | None = None
    bptt: bool = False

    def __init__(self, H: str = "full", pairs=(), untraced=(), trace_dtype=None, *, bptt: bool = False):
        default = _check_kind(H, f"H={H!r}")
        pairs = tuple((pair, kind) for pair, kind in _pairs(pairs) if kind != default)
        untraced, dtype = _untraced(untraced), _dtype(trace_dtype)
        if not isinstance(bptt, bool):
            raise ValueError(f"Rule(bptt=...): expected True or False, got {bptt!r}")
        object.__setattr__(self, "bptt", bptt)
        if self.bptt and (default != "full" or pairs or untraced or dtype is not None):
            raise ValueError("Rule(bptt=True) differentiates the whole sequence and keeps no traces: expected H, "
                             f"pairs, untraced and trace_dtype at their defaults, got H={default!r}, pairs={pairs}, "
                             f"untraced={untraced}, trace_dtype={dtype!r}")
        kinds = {default} | {kind for _, kind in pairs}
        for name, value in (("default_kind", default), ("pairs", pairs), ("untraced", untraced),
                            ("trace_dtype", dtype)):
            object.__setattr__(self, name, value)
        handmade = self.handmade
        object.__setattr__(self, "keep_H", None if self.bptt else functools.partial(_keep_H, default, pairs))
        object.__setattr__(self, "layered", not self.bptt and bool(kinds & {"neuron", "local"}))
        object.__setattr__(self, "exact", self.bptt or (kinds == {"full"} and not untraced and dtype is None))
        object.__setattr__(self, "name", handmade or self.description)
        object.__setattr__(self, "summary", MODES[handmade].summary if handmade else
                           f"a rule of the space: {self.description}")

    @classmethod
    def named(cls, mode: str | Mode) -> Rule:
        """The rule of a built-in mode (``"bptt"``, ``"rtrl"``, ``"diagonal"``, ``"eprop"``), by name or record.

        Raises:
            ValueError: not a built-in mode (one line).
        """
        if isinstance(mode, Rule):
            return mode
        name = mode.name if isinstance(mode, Mode) else mode
        if isinstance(name, str) and name in MODES and (not isinstance(mode, Mode) or MODES[name] is mode):
            return cls(bptt=True) if name == "bptt" else cls({v: k for k, v in _HANDMADE.items()}[name])
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")

    @property
    def handmade(self) -> str | None:
        """The name of the built-in mode this rule equals, or ``None``."""
        if self.bptt:
            return "bptt"
        if self.pairs or self.untraced or self.trace_dtype is not None:
            return None
        return _HANDMADE.get(self.default_kind)

    def kind(self, a: int, b: int) -> str:
        """The kind the pair ``(a, b)`` keeps of ``H[a][b]``."""
        return dict(self.pairs).get((a, b), self.default_kind)

    @property
    def description(self) -> str:
        """One line: the kinds, the untraced parameters and the stored dtype (without the built-in name)."""
        if self.bptt:
            return "bptt: the whole sequence differentiated, no traces"
        text = "H " + self.default_kind + "".join(f", s{a}<-s{b} {kind}" for (a, b), kind in self.pairs)
        if self.untraced:
            text += "; untraced " + ", ".join(self.untraced)
        if self.trace_dtype is not None:
            text += f"; traces {self.trace_dtype}"
        return text

    def check(self, params, state) -> None:
        _check_pairs(self.pairs, len(jax.tree.leaves(state)))

    def untraced_names(self) -> tuple[str, ...]:
        return self.untraced

    def stored_dtype(self, dtype) -> np.dtype:
        return np.dtype(dtype) if self.trace_dtype is None else jnp.dtype(self.trace_dtype)

    def replace(self, **changes) -> Rule:
        """A rule with the given fields (``H``, ``pairs``, ``untraced``, ``trace_dtype``) changed."""
        fields = {"H": self.default_kind, "pairs": self.pairs, "untraced": self.untraced,
                  "trace_dtype": self.trace_dtype, "bptt": self.bptt}
        unknown = set(changes) - set(fields)
        if unknown:
            raise ValueError(f"Rule.replace: unknown field {sorted(unknown)[0]!r}; expected one of "
                             f"{', '.join(fields)}")
        return Rule(**(fields | changes))

    def __str__(self) -> str:
        handmade = self.handmade
        if handmade == "bptt":
            return self.description
        return self.description + (f" (= {handmade})" if handmade else "")

    def __repr__(self) -> str:
        args = [repr(self.default_kind)]
        if self.pairs:
            args.append(f"pairs={dict(self.pairs)!r}")
        if self.untraced:
            args.append(f"untraced={self.untraced!r}")
        if self.trace_dtype is not None:
            args.append(f"trace_dtype={self.trace_dtype!r}")
        return "Rule(bptt=True)" if self.bptt else f"Rule({', '.join(args)})"


class Cost(NamedTuple):
    """What a rule costs per example, from the step's graph alone.

    Attributes:
        trace_bytes: bytes of all traces stored between steps: every traced block's stored numbers (its
            layout's ``stored_size``) times the itemsize of its stored dtype; equal to the ``nbytes`` of the
            traces a run allocates (``plan_traces(...).zeros()``).
        muls_per_step: multiplications of one step-by-step trace update ``G_t = H̃_t·G_{t-1} + F̃_t``: for every
            traced block, :func:`plastix.ad.compose`'s count of ``H̃[a][b]·G[(b, p)]`` with ``G`` in its stored
            layout (products of partials with stored values: the size of the union of their labels; index maps
            free), summed. Not counted: forming ``H̃`` and ``F̃`` (the elimination of the step's graph, see
            :func:`plastix.ad.count_muls`), additions, the learning signal and the gradient ``L_t·G_{t-1}``; the
            chunked form ``value_and_grad`` uses for per-neuron recurrences does the same arithmetic as matrix
            products.
    """

    trace_bytes: int
    muls_per_step: int


def rule_cost(step, params, state0, x0, rule: str | Mode, *, order="rev") -> Cost:
    """The cost of an online rule per example, from shapes and structure alone (nothing is run).

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one example.
        params: parameter pytree; only shapes and dtypes are used.
        state0: the state of one example (no batch axis).
        x0: the input of one step of one example.
        rule: a :class:`Rule`, a :class:`Mode` or an online mode's name (``"rtrl"``, ``"diagonal"``, ``"eprop"``).
        order: elimination order for the step's Jacobians.

    Returns:
        A :class:`Cost` (see there for what is counted).

    Raises:
        ValueError: an unknown mode, ``"bptt"`` (no traces: its memory grows with the sequence), an invalid rule.
    """
    mode = get_mode(rule, online=True, who="rule_cost")
    plan = bounded_plan(step, params, state0, x0, mode, order=order, max_trace_size=None)
    return Cost(plan.stored_bytes, plan.muls_per_step)
