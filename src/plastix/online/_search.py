"""A search over the space of online rules (:class:`~plastix.online.Rule`) for the best ones within a memory budget.

The space: a kind per pair of state leaves whose block of ``H`` is not zero (``"full"``, ``"neuron"``, ``"local"``,
``"none"``) × the parameters left untraced × the dtype traces are stored in (``None``, ``"float32"``,
``"bfloat16"``, ``"float16"``). A *candidate* is a choice of kinds and dtype; it costs one plan (shapes only, as
:func:`~plastix.online.rule_cost`) and, if it fits, one *run* (an evaluation): ``value_and_grad(...,
batched=True)`` with every parameter traced. Three facts keep the search cheap:

* a parameter's trace and its gradient depend only on ``H̃`` and its own ``F̃``: the gradient of a rule with
  some parameters untraced is, parameter by parameter, the gradient of the same candidate with all of them
  traced or the within-step gradient (the same for every rule). One run gives every subset of untraced
  parameters (all subsets up to :data:`ALL_SUBSETS` traced parameters); bytes and muls add up per parameter too;
* kinds that keep the same block of a pair (``"neuron"`` of a block that is already per neuron is ``"full"``)
  are found once, numerically, on two states of the data; a candidate equivalent to one already seen is skipped;
* a rule that claims exactness (every pair ``"full"``, all traced, no ``trace_dtype``: rtrl) has BPTT's gradient
  (``cosine`` 1): it is not run.

The search (:func:`search_rules`):

1. *enumerates*: every kind for all pairs at once, with every dtype (rtrl, diagonal and eprop first); then, if the
   runs left suffice for every distinct candidate, all of them, in an order shuffled by ``seed``;
2. *prunes* by cost: a candidate whose cheapest rule with a trace exceeds the budget is not run, nor one whose
   trace updates would take longer than ``seconds`` at :data:`NOMINAL_MULS_PER_SECOND` (a fixed figure, so that
   what is skipped does not depend on the machine);
3. *moves locally*: from a rule of the current front chosen by ``random.Random(seed)``, one pair's kind or the
   dtype changed, until the runs are spent or no unseen neighbour of the front is left.

BPTT's gradient and the within-step gradient (no traces at all) are one run each, not counted.
"""

from __future__ import annotations

import functools
import itertools
import math
import random
import time
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._checks import check_sequence
from ._jacobians import step_jacobians
from ._loop import value_and_grad
from ._plan import bounded_plan, parameter_names
from ._rule import DTYPES, KINDS, Rule, _kept_block

__all__ = ["Found", "search_rules"]

NOMINAL_MULS_PER_SECOND = 2e8
"""A deliberately low speed for the trace updates (multiplications per second): a candidate whose updates over the
data (``muls_per_step · T · B``) would take longer than ``seconds`` at this speed is not run. Fixed, so that
what is skipped does not depend on the machine."""

ALL_SUBSETS = 8
"""Up to this many traced parameters, every subset of them is tried untraced; beyond, each one alone, all but
one, and all."""


class Found(NamedTuple):
    """One rule of the front.

    Attributes:
        rule: the :class:`~plastix.online.Rule`.
        trace_bytes, muls_per_step: its :class:`~plastix.online.Cost` per example.
        cosine: the cosine between its gradient and BPTT's on the search's data, all parameters flattened
            together.
        handmade: the built-in mode's name if the rule is one (``"rtrl"``, ``"diagonal"``, ``"eprop"``), else
            ``None``.
    """

    rule: Rule
    trace_bytes: int
    muls_per_step: int
    cosine: float
    handmade: str | None = None


def _check_budget(budget_bytes):
    if budget_bytes is None:
        return None
    ok = isinstance(budget_bytes, int | float | np.integer | np.floating) and not isinstance(budget_bytes, bool)
    if not ok or not budget_bytes > 0:
        raise ValueError(f"search_rules: budget_bytes must be a positive number of trace bytes per example, or "
                         f"None for no budget, got {budget_bytes!r}")
    return float(budget_bytes)


def _check_options(seconds, seed, evaluations):
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"search_rules: seconds must be a positive number, got {seconds!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"search_rules: seed must be an integer, got {seed!r}")
    if isinstance(evaluations, bool) or not isinstance(evaluations, int | np.integer) or evaluations < 1:
        raise ValueError(f"search_rules: evaluations must be a positive number of runs, got {evaluations!r}")


@functools.lru_cache(maxsize=256)
def _gradient_fn(step, loss, rule, order):
    """The jitted batched gradient of a rule (cached: an equal rule on the same step reuses the compilation)."""
    return jax.jit(value_and_grad(step, loss, rule, order=order, max_trace_size=None, batched=True))


class _Space:
    """The step's pairs, the classes of equal kinds per pair, the traceable parameters and the data."""

    def __init__(self, step, loss, params, state0, xs, targets, order):
        self.step, self.loss, self.order = step, loss, order
        self.params, self.state0, self.xs, self.targets = params, state0, xs, targets
        self.names = parameter_names(params)
        self.example = jax.tree.map(lambda v: v[0], state0)
        self.x0 = jax.tree.map(lambda v: v[0, 0], xs)
        self.T, self.B = jax.tree.leaves(xs)[0].shape[:2]
        self.working = {np.dtype(jnp.result_type(v)) for v in jax.tree.leaves(params)}
        self._classes()
        rtrl = bounded_plan(step, params, self.example, self.x0, Rule("full"), order=order, max_trace_size=None)
        self.traceable = tuple(sorted({p for _, p in rtrl.blocks}))
        self.costs: dict = {}

    def _classes(self):
        """Per pair with a nonzero block of ``H``: a class id per kind (equal ids keep equal blocks)."""
        fn, found = _kept_blocks(self.step, self.order)
        xs0 = jax.tree.map(lambda v: v[:, 0], self.xs)
        half = max(1, self.T // 2)
        mid = _advance(self.step, self.params, self.example, jax.tree.map(lambda v: v[:half - 1], xs0))
        probes = [fn(self.params, self.example, self.x0),
                  fn(self.params, mid, jax.tree.map(lambda v: v[half - 1], xs0))]
        info = found[_shapes((self.params, self.example, self.x0))]
        self.pairs, self.multilayer = info["pairs"], info["layers"]
        self.class_of = {}
        for pair in self.pairs:
            reps: list[str] = []
            for kind in KINDS:
                same = next((r for r in reps if _same_block(probes, info["keys"], pair, kind, r)), None)
                if same is None:
                    reps.append(kind)
                self.class_of[(pair, kind)] = reps.index(same or kind)

    def rule(self, kinds: tuple, dtype, untraced=()) -> Rule:
        """The rule with ``kinds`` on the nonzero pairs (the most common one as the default)."""
        counts = {k: kinds.count(k) for k in KINDS if k in kinds}
        default = max(counts, key=lambda k: (counts[k], -list(KINDS).index(k))) if counts else "none"
        pairs = {pair: kind for pair, kind in zip(self.pairs, kinds) if kind != default}
        return Rule(default, pairs, tuple(self.names[p] for p in untraced), dtype)

    def key(self, kinds: tuple, dtype) -> tuple:
        """Equal for rules that keep equal blocks, with the same ``F`` and stored dtype."""
        layered = any(k in ("neuron", "local") for k in kinds) if self.multilayer else None
        same = dtype is not None and len(self.working) == 1 and np.dtype(jnp.dtype(dtype)) in self.working
        return (tuple(self.class_of[(pair, k)] for pair, k in zip(self.pairs, kinds)), layered,
                None if same else dtype)

    def cost(self, kinds: tuple) -> dict:
        """Per traceable parameter: ``(numbers with their working dtypes, muls)`` of its traces under ``kinds``."""
        if kinds not in self.costs:
            plan = bounded_plan(self.step, self.params, self.example, self.x0, self.rule(kinds, None),
                                order=self.order, max_trace_size=None)
            per = {p: ([], 0) for p in self.traceable}
            for (a, p), t in plan.templates.items():
                sizes, muls = per[p]
                per[p] = (sizes + [(t.stored_size, np.dtype(t.val.dtype))], muls + plan.muls.get((a, p), 0))
            self.costs[kinds] = per
        return self.costs[kinds]

    def run(self, rule: Rule) -> list[np.ndarray]:
        """The rule's gradient on the data, one flat float64 array per parameter leaf."""
        _, grads = _gradient_fn(self.step, self.loss, rule, self.order)(self.params, self.state0, self.xs,
                                                                          self.targets)
        return [np.asarray(g, np.float64).ravel() for g in jax.tree.leaves(grads)]


def _shapes(tree):
    leaves, tree = jax.tree.flatten(tree)
    return tree, tuple((tuple(jnp.shape(v)), str(jnp.result_type(v))) for v in leaves)


@functools.lru_cache(maxsize=32)
def _kept_blocks(step, order):
    """A jitted ``(params, state, x) -> {(pair, kind): dense block}`` for one example, and what its tracing found
    per argument shapes: the pairs with a nonzero block of ``H``, the blocks' shapes, whether ``F_layer`` differs
    from ``F`` (several layers)."""
    found = {}

    def kept(params, state, x):
        jac = step_jacobians(step, params, state, x, order=order, local=True)
        n = len(jac.H)
        pairs = tuple((a, b) for a in range(n) for b in range(n) if jac.H[a][b] is not None)
        blocks, keys = {}, {}
        for pair in pairs:
            for kind in KINDS:
                block = _kept_block(kind, jac, *pair)
                if block is not None:
                    blocks[(pair, kind)] = block.todense()
                    keys[(pair, kind)] = (block.out_shape, block.in_shape)
        found[_shapes((params, state, x))] = {"pairs": pairs, "keys": keys, "layers": jac.F_layer is not jac.F}
        return blocks

    return jax.jit(kept), found


@functools.partial(jax.jit, static_argnums=0)
def _advance(step, params, state, xs):
    """The state after the steps of ``xs`` (one example)."""
    return lax.scan(lambda s, x: (step(params, s, x)[0], None), state, xs)[0]


def _same_block(probes, keys, pair, kind, other) -> bool:
    a, b = probes[0].get((pair, kind)), probes[0].get((pair, other))
    if a is None or b is None:
        return a is None and b is None
    if keys[(pair, kind)] != keys[(pair, other)]:
        return False
    for probe in probes:
        x, y = np.asarray(probe[(pair, kind)]), np.asarray(probe[(pair, other)])
        scale = max(float(np.max(np.abs(x), initial=0.0)), float(np.max(np.abs(y), initial=0.0)), 1e-30)
        if not np.allclose(x, y, rtol=1e-6, atol=1e-6 * scale):
            return False
    return True


def _bytes(sizes, dtype) -> int:
    return sum(n * (np.dtype(jnp.dtype(dtype)).itemsize if dtype is not None else d.itemsize) for n, d in sizes)


def _subsets(params: tuple) -> list[tuple]:
    """The sets of parameters left untraced that are tried (all of them only with ``ALL_SUBSETS`` or fewer)."""
    if len(params) <= ALL_SUBSETS:
        return [c for r in range(len(params) + 1) for c in itertools.combinations(params, r)]
    ones = [(p,) for p in params]
    return [()] + ones + [tuple(q for q in params if q != p) for p in params] + [params]


def _front(points: list) -> list:
    """The points not dominated in (bytes, muls, 1 - cosine), sorted by bytes."""
    ranked = sorted(points, key=lambda f: (f.trace_bytes, f.muls_per_step, -f.cosine, str(f.rule)))
    front: list = []
    for f in ranked:
        if not any(g.trace_bytes <= f.trace_bytes and g.muls_per_step <= f.muls_per_step and g.cosine >= f.cosine
                   for g in front):
            front.append(f)
    return front


class _Search:
    """The state of one search: the points found, the candidates seen, the runs done."""

    def __init__(self, space: _Space, budget, seconds, evaluations):
        self.space, self.budget, self.seconds, self.evaluations = space, budget, seconds, evaluations
        self.start, self.runs, self.stopped, self.seen = time.monotonic(), 0, False, set()
        self.reference = space.run(Rule(bptt=True))
        self.norm = math.sqrt(sum(float(r @ r) for r in self.reference))
        if self.norm == 0:
            raise ValueError("search_rules: BPTT's gradient is zero on the given data, so no cosine is defined; "
                             "expected data on which the loss depends on the parameters")
        self.untraced_all = tuple(space.names[p] for p in space.traceable)
        within = space.run(Rule("none", untraced=self.untraced_all)) if space.traceable else self.reference
        self.within = {p: self._stats(within, p) for p in range(len(self.reference))}
        self.points: dict[Rule, Found] = {}
        self._add(Rule("none", untraced=self.untraced_all), 0, 0, {})

    def _stats(self, grads, p):
        return float(grads[p] @ self.reference[p]), float(grads[p] @ grads[p])

    def _add(self, rule, nbytes, muls, own):
        """A point: parameters in ``own`` with their (dot, square) from a run, the others within-step only."""
        if self.budget is None or nbytes <= self.budget:
            stats = [own.get(p, self.within[p]) for p in self.within]
            dot, sq = sum(d for d, _ in stats), sum(q for _, q in stats)
            cosine = 0.0 if sq == 0 else dot / (math.sqrt(sq) * self.norm)
            self.points.setdefault(rule, Found(rule, int(nbytes), int(muls), cosine, rule.handmade))

    def _may_run(self) -> bool:
        if self.runs >= self.evaluations or self.stopped:
            return False
        if time.monotonic() - self.start > self.seconds:
            self.stopped = True
            warnings.warn(f"search_rules: stopped by seconds={self.seconds} after {self.runs} of {self.evaluations} "
                          f"evaluations; this result depends on the machine's speed (lower evaluations= for a "
                          f"reproducible search)", RuntimeWarning, stacklevel=4)
        return not self.stopped

    def consider(self, kinds: tuple, dtype) -> None:
        """Cost a candidate, prune it or run it, and add every subset of its parameters left untraced."""
        space, key = self.space, self.space.key(kinds, dtype)
        if key in self.seen or self.stopped:
            return
        self.seen.add(key)
        cost = space.cost(kinds)
        carried = [p for p in space.traceable if cost[p][0]]
        nbytes = {p: _bytes(cost[p][0], dtype) for p in carried}
        if not carried or (self.budget is not None and min(nbytes.values()) > self.budget):
            return
        rule = space.rule(kinds, dtype)
        if rule.exact:
            grads = self.reference
        elif sum(cost[p][1] for p in carried) * space.T * space.B > self.seconds * NOMINAL_MULS_PER_SECOND:
            return
        elif self._may_run():
            grads, self.runs = space.run(rule), self.runs + 1
        else:
            return
        own = {p: self._stats(grads, p) for p in carried}
        for untraced in _subsets(tuple(carried)):
            kept = [p for p in carried if p not in untraced]
            if kept:
                self._add(space.rule(kinds, dtype, untraced), sum(nbytes[p] for p in kept),
                          sum(cost[p][1] for p in kept), {p: own[p] for p in kept})

    def result(self) -> list[Found]:
        front = _front(list(self.points.values()))
        handmade = [f for f in self.points.values() if f.handmade and f not in front]
        return sorted(front + handmade, key=lambda f: (f.trace_bytes, f.muls_per_step, -f.cosine, str(f.rule)))


def search_rules(step, loss, params, state0, xs, targets, *, budget_bytes: float | None = None,
                 seconds: float = 60.0, seed: int = 0, evaluations: int = 32, order="rev") -> list[Found]:
    """The Pareto front of online rules (trace bytes, multiplications per step, 1 − cosine to BPTT) in a budget.

    Enumeration with pruning by cost, then local moves from the front (see the module's docstring); the runs of
    candidates are bounded by ``evaluations``, so the result depends only on the arguments and ``seed``;
    ``seconds`` is a safety cap (a ``RuntimeWarning`` says when it stopped the search: the result then depends on
    the machine).

    Args:
        step, loss: ``step(params, state, x) -> (new_state, out)`` and ``loss(out, target) -> scalar``, one example.
        params: parameters.
        state0, xs, targets: batched, time-major data as with ``batched=True``: ``(B, ...)`` and ``(T, B, ...)``.
        budget_bytes: the most trace bytes per example a rule may store (``None``: no limit).
        seconds: safety cap on the search's time.
        seed: seeds the order of the enumeration and the choice of local moves.
        evaluations: the most gradient runs of candidates.
        order: elimination order for the step's Jacobians.

    Returns:
        :class:`Found` rows within the budget sorted by bytes (then muls, then cosine): every point not dominated
        in (bytes, muls, 1 − cosine), plus the hand-made modes that fit (marked), also when dominated. The rule
        without traces (0 bytes) is always there.

    Raises:
        ValueError: an invalid budget (negative, zero, not a number), ``seconds``, ``seed`` or ``evaluations``;
            data of the wrong shape; BPTT's gradient zero on the data (no cosine).
    """
    budget = _check_budget(budget_bytes)
    _check_options(seconds, seed, evaluations)
    check_sequence(state0, xs, targets, batched=True)
    search = _Search(_Space(step, loss, params, state0, xs, targets, order), budget, seconds, evaluations)
    space, dtypes, rng = search.space, (None,) + DTYPES, random.Random(seed)
    for dtype in dtypes:  # every kind on all pairs, rtrl, diagonal and eprop first
        for kind in KINDS:
            search.consider((kind,) * len(space.pairs), dtype)
    everything = _all_candidates(space, dtypes, search.seen, limit=evaluations - search.runs)
    for candidate in rng.sample(everything, len(everything)) if everything is not None else ():
        search.consider(*candidate)
    while search.runs < evaluations and not search.stopped:
        moves = _neighbours(space, _front(list(search.points.values())), search.seen, dtypes)
        if not moves:
            break
        search.consider(*rng.choice(moves))
    return search.result()


def _all_candidates(space: _Space, dtypes, seen: set, limit: int) -> list | None:
    """Every distinct (kinds, dtype) not seen yet, one per equivalence class, if there are at most ``limit``; else
    ``None``."""
    if len(KINDS) ** len(space.pairs) * len(dtypes) > 2 ** 16:
        return None
    found: dict = {}
    for kinds in itertools.product(KINDS, repeat=len(space.pairs)):
        for dtype in dtypes:
            key = space.key(kinds, dtype)
            if key not in seen:
                found.setdefault(key, (kinds, dtype))
    if len(found) > limit:
        return None
    return [found[k] for k in sorted(found, key=str)]


def _neighbours(space: _Space, front: list, seen: set, dtypes) -> list:
    """The unseen (kinds, dtype) one move away from a rule of the front: one pair's kind or the dtype changed."""
    moves: dict = {}
    for f in front:
        rule = f.rule
        if rule.bptt or len(rule.untraced) == len(space.traceable):
            continue
        kinds = tuple(rule.kind(*pair) for pair in space.pairs)
        options = [(kinds[:i] + (k,) + kinds[i + 1:], rule.trace_dtype) for i in range(len(kinds)) for k in KINDS
                   if k != kinds[i]]
        options += [(kinds, d) for d in dtypes if d != rule.trace_dtype]
        for kinds_, dtype in options:
            key = space.key(kinds_, dtype)
            if key not in seen:
                moves.setdefault(key, (kinds_, dtype))
    return [moves[k] for k in sorted(moves, key=str)]
