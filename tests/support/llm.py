"""Helpers shared by the LLM test modules, unit and integration (`from tests.support.llm import ...`)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from profile_features import schemas
from profile_features.config import JobConfig
from profile_features.histories import history_hash
from profile_features.profiles import generate_profiles
from profile_features.profiles.base import UserHistory
from profile_features.profiles.config import ProfileConfig
from profile_features.profiles.stage import make_generator

CUTOFF = "2030-01-01T00:00:00Z"  # after every sample interaction


def job_config(data_dir: Path, **profile) -> JobConfig:
    return JobConfig.model_validate(
        {
            "data_dir": str(data_dir),
            "history": {"cutoff": CUTOFF, "max_length": 30},
            "spark": {"master": "local[2]"},
            "profile": profile,
        }
    )


def append_event_to_histories(folder: str | Path, users: list[str]) -> None:
    """Give these users one new event (new history content and hash), rewriting the
    HISTORIES Parquet folder in place, as the next histories run would."""
    folder = Path(folder)
    frame = pd.read_parquet(folder)
    for i in frame.index[frame.user_id.isin(list(users))]:
        events = json.loads(frame.at[i, "history_json"])
        events.append({**events[-1], "title": "A Brand New Title", "item_id": "new"})
        frame.at[i, "history_json"] = json.dumps(events, sort_keys=True)
        frame.at[i, "history_hash"] = history_hash(frame.at[i, "history_json"])
    for old in folder.glob("*.parquet"):
        old.unlink()
    table = pa.Table.from_pandas(frame[schemas.HISTORIES.names], schema=schemas.HISTORIES, preserve_index=False)
    pq.write_table(table, folder / "part-0.parquet")


def four_event_history(title: str, description: str) -> UserHistory:
    """One user's four dramas titled `title 0..3`, each with `description`."""
    events = [
        {
            "item_id": f"i{i}",
            "timestamp": f"2026-01-0{i + 1}T00:00:00+00:00",
            "rating": 5.0,
            "title": f"{title} {i}",
            "genres": ["Drama"],
            "description": description,
            "year": 1999,
        }
        for i in range(4)
    ]
    return UserHistory("u1", events, "h1")


def written_profile(config: ProfileConfig, history: UserHistory) -> str:
    """The stored profile text the generator `config` names writes for `history`."""
    frame = pd.DataFrame(
        {
            "user_id": [history.user_id],
            "event_timestamp": [pd.Timestamp("2026-02-01", tz="UTC")],
            "history_json": [json.dumps(history.events)],
            "history_hash": [history.history_hash],
            "history_length": [len(history.events)],
        }
    )
    return generate_profiles(frame, make_generator(config)).profile_text.iloc[0]
