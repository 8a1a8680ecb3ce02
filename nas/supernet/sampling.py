"""Path sampling: which candidate the supernet trains at each step (a registry of rules).

A rule maps ``(seed, decision key, step, option weights)`` to an option index and is a pure
function of the step, so a resumed training draws exactly the paths an uninterrupted one does.
Each option is drawn in proportion to its weight: all 1 (``balance: options``), or, with
``balance: weights``, ``option_weights``: an option that opens other decisions is drawn as many
times as the most options among them. PAN opens the neck's block slots (4 options each), AFPN
brings one fixed neck: PAN is drawn 4 times per AFPN, so each PAN block option trains about as
often as AFPN's neck (with equal draws AFPN's neck trains at every AFPN step, each PAN block
option at a quarter of the PAN steps, and the supernet favours AFPN designs).

- ``uniform``: single-path one-shot (SPOS): every decision independently drawn at each step.
- ``fair``: strict fairness in counts (FairNAS): each decision walks through a fresh random
  permutation of its options (each repeated its weight times), one option per step, so after
  ``k * n`` steps each of its ``n`` options was trained exactly ``k`` times (equal weights).
- ``sandwich`` (BigNAS): several paths per step, their gradients accumulated into one update:
  the largest path (every decision at its option with the most parameters), the smallest, and
  ``n_random`` uniform ones; the training distils the largest path's outputs into the others
  (in-place distillation, ``nas.supernet.train``). It needs each option's size
  (``option_sizes``).

Example:
    >>> from nas.search.space import parse_space
    >>> space = parse_space({"backbone": {"block": {"P3": ["C2f", "CSPPC"]}}}, source="<inline>")
    >>> sampler = PathSampler(space, "fair", seed=0)
    >>> sorted(sampler.path(s)["backbone.block.P3"] for s in range(4))
    ['C2f', 'C2f', 'CSPPC', 'CSPPC']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.search.space import SearchSpace

__all__ = ["BALANCES", "SAMPLING_RULES", "SANDWICH", "PathSampler", "fair_index",
           "option_sizes", "option_weights", "register_rule", "sampling_names", "uniform_index"]

Rule = Callable[[int, str, int, Sequence[int]], int]
SAMPLING_RULES: dict[str, Rule] = {}


def register_rule(name: str) -> Callable[[Rule], Rule]:
    """Decorator: make a sampling rule selectable as ``sampling: <name>``."""

    def wrap(rule: Rule) -> Rule:
        SAMPLING_RULES[name] = rule
        return rule

    return wrap


def _slots(weights: Sequence[int]) -> list[int]:
    """Each option index repeated its weight times: ``[1, 2] -> [0, 1, 1]``."""
    return [i for i, w in enumerate(weights) for _ in range(int(w))]


@register_rule("uniform")
def uniform_index(seed: int, key: str, step: int, weights: Sequence[int]) -> int:
    """An option drawn at each step, in proportion to its weight."""
    slots = _slots(weights)
    return slots[random.Random(f"{seed}:{key}:{step}").randrange(len(slots))]


@register_rule("fair")
def fair_index(seed: int, key: str, step: int, weights: Sequence[int]) -> int:
    """Slot ``step % m`` of round ``step // m``'s random permutation of the ``m`` weighted
    slots (each option its weight times)."""
    order = _slots(weights)
    rnd, pos = divmod(step, len(order))
    random.Random(f"{seed}:{key}:round{rnd}").shuffle(order)
    return order[pos]


SANDWICH = "sandwich"  # several paths per step (not a per-decision rule)


def sampling_names() -> list[str]:
    """Every valid ``sampling`` setting."""
    return sorted([*SAMPLING_RULES, SANDWICH])


BALANCES = ("options", "weights")  # what the draws make equal (``PathSampler``'s ``balance``)


def option_weights(space: SearchSpace) -> dict[str, list[int]]:
    """Per decision with several options, how often each option is drawn under ``balance:
    weights``: the most options among the decisions that only it opens (1 if none).

    Example:
        >>> from nas.search.space import load_space
        >>> from nas.resources import path
        >>> option_weights(load_space(path("search_spaces") / "default.yaml"))["neck"]
        [4, 1]
    """
    multi = {k: len(d.options) for k, d in space.decisions.items() if len(d.options) > 1}
    out: dict[str, list[int]] = {}
    for key in multi:
        names = space.decisions[key].names
        opened = [{k for k in multi if k != key and space.is_active(k, {key: name})}
                  for name in names]  # fmt: skip
        always = set.intersection(*opened)
        out[key] = [max((multi[k] for k in keys - always), default=1) for keys in opened]
    return out


def option_sizes(space: SearchSpace, nc: int) -> dict[str, list[int]]:
    """Parameters of the baseline with one decision set to each of its options, per decision.

    What ``sandwich`` calls the largest and the smallest option of a decision (the others at
    the baseline's choices; a decision inactive there measures equal for every option).
    """
    from nas.model.counting import count_params
    from nas.model.detector import build_model
    from nas.search.wiring import to_arch

    base = space.baseline_choices()
    sizes: dict[str, list[int]] = {}
    for key, decision in space.decisions.items():
        if len(decision.options) > 1:
            sizes[key] = [count_params(build_model(to_arch(
                space, space.complete({**base, key: name}), nc))) for name in decision.names]
    return sizes


class PathSampler:
    """The candidate(s) trained at each step.

    Args:
        space: The search space (every decision with several options is sampled; decisions
            made inactive by another choice are dropped by ``space.complete``).
        rule: A name in ``sampling_names()``.
        seed: Seed of the draws.
        sizes: ``option_sizes(space, nc)``; ``sandwich`` needs it.
        n_random: ``sandwich``'s uniform paths per step, besides the largest and the smallest.
        balance: ``options`` (every option of a decision drawn equally often) or ``weights``
            (``option_weights``: an option drawn as often as the options it opens below it).
    """

    def __init__(self, space: SearchSpace, rule: str, seed: int = 0, *,
                 sizes: dict[str, list[int]] | None = None,
                 n_random: int = 2, balance: str = "options") -> None:  # fmt: skip
        if rule not in sampling_names():
            raise ValueError(f"sampling: {rule!r}; valid: {sampling_names()}")
        if balance not in BALANCES:
            raise ValueError(f"balance: {balance!r}; valid: {list(BALANCES)}")
        if rule == SANDWICH and sizes is None:
            raise ValueError("sampling: sandwich needs the options' sizes (option_sizes)")
        self.space, self.rule, self.seed = space, rule, seed
        self._draw = SAMPLING_RULES.get(rule, uniform_index)
        self._keys = [k for k, d in space.decisions.items() if len(d.options) > 1]
        self._weights = option_weights(space) if balance == "weights" else {
            k: [1] * len(space.decisions[k].options) for k in self._keys}  # fmt: skip
        self._extremes: list[dict[str, Any]] = []
        if rule == SANDWICH:
            assert sizes is not None

            def extreme(choose: Callable[..., int]) -> dict[str, Any]:
                return space.complete({k: space.decisions[k].names[
                    choose(range(len(sizes[k])), key=sizes[k].__getitem__)] for k in self._keys})

            self._extremes = [extreme(max), extreme(min)]  # the largest first: it teaches
        self.n_random = int(n_random)

    def path(self, step: int, draw: int = 0) -> dict[str, Any]:
        """The complete choices of training step ``step`` (0-based), its ``draw``-th path."""
        partial = {}
        for key in self._keys:
            names = self.space.decisions[key].names
            tag = key if draw == 0 else f"{key}#{draw}"
            partial[key] = names[self._draw(self.seed, tag, step, self._weights[key])]
        return self.space.complete(partial)

    def paths(self, step: int) -> list[dict[str, Any]]:
        """The paths trained at step ``step``: one, or ``sandwich``'s (the largest first)."""
        if self.rule != SANDWICH:
            return [self.path(step)]
        return [*self._extremes, *(self.path(step, j) for j in range(self.n_random))]
