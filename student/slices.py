"""Where a student's gains should show: short histories, long-tail targets, items training never saw.

The leave-last-out protocol with three extra slices of the same test users:
- `short`: the same targets, each input cut to its newest `short_len` items;
- `long_tail`: users whose target is outside the most-trained `head_share` of items;
- `unseen`: users whose target is one of the items removed from training (`hold_out_items`), so
  only a model that reads item content can rank it.
`all` (and `short`, `long_tail`) count users whose target training saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = ["hold_out_items", "without_items", "long_tail_items", "SliceSet", "evaluation_slices"]


def hold_out_items(items: Iterable[str], fraction: float, seed: int = 0) -> set[str]:
    """A seeded random `fraction` of `items` (at least one when fraction > 0), to remove from training."""
    pool = sorted(set(map(str, items)))
    if fraction <= 0 or not pool:
        return set()
    count = max(1, int(round(fraction * len(pool))))
    return set(np.random.default_rng(seed).choice(pool, size=count, replace=False).tolist())


def without_items(histories: dict[str, list[str]], removed: set[str]) -> dict[str, list[str]]:
    """Histories with `removed` items dropped (order kept); users left with nothing are dropped."""
    out = {user: [i for i in items if i not in removed] for user, items in histories.items()}
    return {user: items for user, items in out.items() if items}


def long_tail_items(training: dict[str, list[str]], head_share: float = 0.2) -> set[str]:
    """Items training saw that are outside the `head_share` most frequent ones (ties broken by id)."""
    counts = Counter(i for items in training.values() for i in items)
    ranked = sorted(counts, key=lambda i: (-counts[i], i))
    return set(ranked[int(np.ceil(head_share * len(ranked))) :])


@dataclass(frozen=True)
class SliceSet:
    """One slice: users, their inputs (item ids, oldest -> newest) and targets."""

    users: list[str]
    inputs: list[list[str]]
    targets: list[str]


def evaluation_slices(
    test_inputs: dict[str, list[str]],
    test_targets: dict[str, str],
    training: dict[str, list[str]],
    unseen: set[str],
    short_len: int = 5,
    head_share: float = 0.2,
) -> dict[str, SliceSet]:
    """all / short / long_tail / unseen (see the module docstring); users in sorted order."""
    seen = {i for items in training.values() for i in items}
    tail = long_tail_items(training, head_share)
    users = sorted(u for u in test_targets if test_inputs.get(u))

    def make(members, cut: int | None = None) -> SliceSet:
        members = [u for u in users if members(u)]
        inputs = [test_inputs[u][-cut:] if cut else list(test_inputs[u]) for u in members]
        return SliceSet(members, inputs, [test_targets[u] for u in members])

    return {
        "all": make(lambda u: test_targets[u] in seen),
        "short": make(lambda u: test_targets[u] in seen, short_len),
        "long_tail": make(lambda u: test_targets[u] in tail),
        "unseen": make(lambda u: test_targets[u] in unseen),
    }
