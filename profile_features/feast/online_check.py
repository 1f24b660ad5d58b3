"""Does the online store hold a source's newest rows? Read back a sample of entities and compare.

A Feast registry remembers each view's materialization intervals, not what the online store holds:
point a repo at new data whose timestamps fall inside those intervals (or behind them) and
`materialize-incremental` loads nothing and exits 0. Reading a few entities back, with the event
timestamps the online store returns, is the check that does not trust the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

__all__ = ["OnlineCheck", "check_online"]


@dataclass(frozen=True)
class OnlineCheck:
    """Sampled entities of one view: how many the online store holds at the source's newest time.

    `missing`: no online row; `behind`: an online row older than the source's newest before the
    window's end; `ahead`: a newer one (rows of another data set, or a store that keeps the newer
    of two writes, such as Redis).
    """

    view: str
    checked: int
    missing: int
    behind: int
    ahead: int
    example: str = ""

    @property
    def ok(self) -> bool:
        return self.missing == self.behind == self.ahead == 0

    def describe(self) -> str:
        if self.ok:
            return f"online store holds the newest row of all {self.checked} sampled entities"
        parts = [
            f"{count} {what}"
            for count, what in (
                (self.missing, "have no online row"),
                (self.behind, "have an older one"),
                (self.ahead, "have a newer one"),
            )
            if count
        ]
        return f"of {self.checked} sampled entities {', '.join(parts)} than the source's newest (e.g. {self.example})"


def _python(value):
    return value.item() if hasattr(value, "item") else value


def check_online(store, view, latest: dict[tuple, pd.Timestamp]) -> OnlineCheck:
    """Read `latest`'s entities of `view` from the online store and compare event times (whole seconds,
    the online store's precision).

    Args:
        store: the `feast.FeatureStore` the view was materialized with.
        view: the applied `FeatureView` (its join keys, in `view.entity_columns` order, key `latest`).
        latest: sampled entity key tuple -> the source's newest event time (UTC) before the window end.
    """
    keys = [column.name for column in view.entity_columns]
    if not latest or not keys or not view.features:
        return OnlineCheck(view.name, 0, 0, 0, 0)
    entities = list(latest)
    feature = view.features[0].name
    response = store.get_online_features(
        features=[f"{view.name}:{feature}"],
        entity_rows=[dict(zip(keys, map(_python, entity))) for entity in entities],
    ).to_dict(include_event_timestamps=True)
    missing = behind = ahead = 0
    example = ""
    for entity, online_seconds in zip(entities, response[f"{feature}__ts"]):
        source_seconds = int(latest[entity].timestamp())
        if online_seconds == source_seconds:
            continue
        if not online_seconds:
            missing += 1
        elif online_seconds < source_seconds:
            behind += 1
        else:
            ahead += 1
        if not example:
            online = "none" if not online_seconds else f"{pd.Timestamp(online_seconds, unit='s'):%Y-%m-%dT%H:%M:%S}"
            key = ", ".join(f"{name}={value!r}" for name, value in zip(keys, map(_python, entity)))
            example = f"{key}: online {online}, source {latest[entity]:%Y-%m-%dT%H:%M:%S}"
    return OnlineCheck(view.name, len(entities), missing, behind, ahead, example)
