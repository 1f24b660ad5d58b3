"""Arrow schemas of the profile job's own tables: the profile cache, dead letters and the
per-checkpoint run statistics (PROFILES itself stays in `profile_features.schemas`).

The cache key is (history_hash, key_generator, key_model, key_prompt_version): what
was asked for. `generator/model/prompt_version` say what wrote the text, which differs
from the key when the user fell back to the rule-based writer.
"""

from __future__ import annotations

import pyarrow as pa

from profile_features.schemas import TS

__all__ = ["KEY_COLUMNS", "PROFILE_CACHE", "DEAD_LETTERS", "RUN_STATS"]

KEY_COLUMNS = ["history_hash", "key_generator", "key_model", "key_prompt_version"]

PROFILE_CACHE = pa.schema(
    [
        ("history_hash", pa.string()),
        ("key_generator", pa.string()),
        ("key_model", pa.string()),
        ("key_prompt_version", pa.string()),
        ("profile_text", pa.string()),
        ("generator", pa.string()),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("status", pa.string()),  # "ok" | "fallback"
        ("fallback_reason", pa.string()),
        ("calls", pa.int64()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("run_id", pa.string()),
        ("created_at", TS),
    ]
)

# One row per rejected output, and one per user that fell back (reason "fallback:<cause>").
DEAD_LETTERS = pa.schema(
    [
        ("run_id", pa.string()),
        ("user_id", pa.string()),
        ("history_hash", pa.string()),
        ("key_generator", pa.string()),
        ("key_model", pa.string()),
        ("key_prompt_version", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("output_text", pa.string()),
        ("created_at", TS),
    ]
)

# What one worker checkpoint did; the driver sums these into the run summary.
RUN_STATS = pa.schema(
    [
        ("users", pa.int64()),
        ("ok", pa.int64()),
        ("fallbacks", pa.int64()),
        ("calls", pa.int64()),
        ("retries", pa.int64()),
        ("regenerations", pa.int64()),
        ("rejects", pa.int64()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("chunked_users", pa.int64()),
        ("reasons_json", pa.string()),  # {"too_short": 2, "fallback:http_500": 1, ...}
        ("models_json", pa.string()),  # {"<model the server reported>": completions, ...}
        ("seconds", pa.float64()),
    ]
)
