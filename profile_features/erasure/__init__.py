"""Erasure: forget users everywhere the jobs keep them (issue 36).

- `forget.forget_users(config, user_ids)`: every `personal` table of the catalogue, run summaries, the
  profile cache, scratch folders and (given a Feast repo) the online store; then an audit record.
- `profile_features.tombstones` (a root module: validation reads it): salted hashes of forgotten ids
  under `<data_dir>/tombstones`, which validation honours (`reject_forgotten`), so re-running over raw
  inputs that still hold a user does not bring them back.
- `ids`: reading and normalising the id list (a CSV with a user_id column, Parquet, or one id a line).
"""

from profile_features.erasure.forget import ForgetResult, forget_users
from profile_features.erasure.ids import normalize_user_ids, read_user_ids

__all__ = ["forget_users", "ForgetResult", "read_user_ids", "normalize_user_ids"]
