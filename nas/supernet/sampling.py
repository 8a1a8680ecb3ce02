"""Path sampling: which candidate the supernet trains at each step (a registry of rules).

A rule maps ``(seed, decision key, step, number of options)`` to an option index and is a pure
function of the step, so a resumed training draws exactly the paths an uninterrupted one does.

- ``uniform``: single-path one-shot (SPOS): every decision independently uniform at each step.
- ``fair``: strict fairness in counts (FairNAS): each decision walks through a fresh random
  permutation of its options, one option per step, so after ``k * n`` steps each of its ``n``
  options was trained exactly ``k`` times.
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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.search.space import SearchSpace

__all__ = ["SAMPLING_RULES", "SANDWICH", "PathSampler", "fair_index", "option_sizes",
           "register_rule", "sampling_names", "uniform_index"]

Rule = Callable[[int, str, int, int], int]
SAMPLING_RULES: dict[str, Rule] = {}


def register_rule(name: str) -> Callable[[Rule], Rule]:
    """Decorator: make a sampling rule selectable as ``sampling: <name>``."""

    def wrap(rule: Rule) -> Rule:
        SAMPLING_RULES[name] = rule
        return rule

    return wrap


@register_rule("uniform")
def uniform_index(seed: int, key: str, step: int, n: int) -> int:
    """An option drawn uniformly at each step."""
    return random.Random(f"{seed}:{key}:{step}").randrange(n)


@register_rule("fair")
def fair_index(seed: int, key: str, step: int, n: int) -> int:
    """Option ``step % n`` of the random permutation of round ``step // n``."""
    rnd, pos = divmod(step, n)
    order = list(range(n))
    random.Random(f"{seed}:{key}:round{rnd}").shuffle(order)
    return order[pos]


SANDWICH = "sandwich"  # several paths per step (not a per-decision rule)


def sampling_names() -> list[str]:
    """Every valid ``sampling`` setting."""
    return sorted([*SAMPLING_RULES, SANDWICH])


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
    """

    def __init__(self, space: SearchSpace, rule: str, seed: int = 0, *,
                 sizes: dict[str, list[int]] | None = None,
                 n_random: int = 2) -> None:  # fmt: skip
        if rule not in sampling_names():
            raise ValueError(f"sampling: {rule!r}; valid: {sampling_names()}")
        if rule == SANDWICH and sizes is None:
            raise ValueError("sampling: sandwich needs the options' sizes (option_sizes)")
        self.space, self.rule, self.seed = space, rule, seed
        self._draw = SAMPLING_RULES.get(rule, uniform_index)
        self._keys = [k for k, d in space.decisions.items() if len(d.options) > 1]
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
            partial[key] = names[self._draw(self.seed, tag, step, len(names))]
        return self.space.complete(partial)

    def paths(self, step: int) -> list[dict[str, Any]]:
        """The paths trained at step ``step``: one, or ``sandwich``'s (the largest first)."""
        if self.rule != SANDWICH:
            return [self.path(step)]
        return [*self._extremes, *(self.path(step, j) for j in range(self.n_random))]
