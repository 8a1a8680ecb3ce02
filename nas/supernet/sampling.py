"""Path sampling: which candidate the supernet trains at each step (a registry of rules).

A rule maps ``(seed, decision key, step, number of options)`` to an option index and is a pure
function of the step, so a resumed training draws exactly the paths an uninterrupted one does.

- ``uniform``: single-path one-shot (SPOS): every decision independently uniform at each step.
- ``fair``: strict fairness in counts (FairNAS): each decision walks through a fresh random
  permutation of its options, one option per step, so after ``k * n`` steps each of its ``n``
  options was trained exactly ``k`` times.

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

__all__ = ["SAMPLING_RULES", "PathSampler", "fair_index", "register_rule", "uniform_index"]

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


class PathSampler:
    """The candidate trained at each step.

    Args:
        space: The search space (every decision with several options is sampled; decisions
            made inactive by another choice are dropped by ``space.complete``).
        rule: A name in ``SAMPLING_RULES``.
        seed: Seed of the draws.
    """

    def __init__(self, space: SearchSpace, rule: str, seed: int = 0) -> None:
        if rule not in SAMPLING_RULES:
            raise ValueError(f"sampling: {rule!r}; valid: {sorted(SAMPLING_RULES)}")
        self.space, self.rule, self.seed = space, rule, seed
        self._draw = SAMPLING_RULES[rule]
        self._keys = [k for k, d in space.decisions.items() if len(d.options) > 1]

    def path(self, step: int) -> dict[str, Any]:
        """The complete choices of training step ``step`` (0-based)."""
        partial = {}
        for key in self._keys:
            names = self.space.decisions[key].names
            partial[key] = names[self._draw(self.seed, key, step, len(names))]
        return self.space.complete(partial)
