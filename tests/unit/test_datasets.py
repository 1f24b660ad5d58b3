import pandas as pd

from profile_features.config import SampleConfig
from profile_features.datasets import generate_sample, load_ml100k


def test_sample_is_deterministic_per_seed():
    a = generate_sample(SampleConfig(users=10, items=30, seed=1))
    b = generate_sample(SampleConfig(users=10, items=30, seed=1))
    c = generate_sample(SampleConfig(users=10, items=30, seed=2))
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    assert not a.interactions.equals(c.interactions)


def test_interactions_follow_hidden_tastes(small_sample):
    """Known answer: a user's favourite genre is the one they interact with most,
    far more often than the catalogue's share of that genre."""
    genres = small_sample.items.set_index("item_id")["genres"].str.split("|")
    hits = 0
    for user_id, taste in small_sample.user_tastes.set_index("user_id").iterrows():
        seen = small_sample.interactions.loc[small_sample.interactions.user_id == user_id, "item_id"]
        share = seen.map(lambda i: taste.top_genre in genres[i]).mean()
        hits += share > 0.3
    assert hits / len(small_sample.user_tastes) > 0.8


def test_sample_timestamps_are_utc_micro(small_sample):
    assert str(small_sample.interactions["timestamp"].dtype) == "datetime64[us, UTC]"
    assert small_sample.interactions.groupby("user_id")["timestamp"].is_monotonic_increasing.all()


def test_ml100k_loader_on_a_tiny_copy_of_its_format(tmp_path):
    (tmp_path / "u.data").write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    genre_flags = ["0"] * 19
    action = genre_flags.copy()
    action[1] = "1"
    lines = [
        "|".join(["242", "Kolya (1996)", "24-Jan-1997", "", "http://x", *genre_flags]),
        "|".join(["302", "L.A. Confidential (1997)", "01-Jan-1997", "", "http://y", *action]),
    ]
    (tmp_path / "u.item").write_bytes("\n".join(lines).encode("latin-1"))
    interactions, items = load_ml100k(tmp_path)
    assert interactions.user_id.tolist() == ["196", "186"]
    assert interactions.timestamp.iloc[0] == pd.Timestamp(881250949, unit="s", tz="UTC")
    assert items.set_index("item_id").loc["302", "title"] == "L.A. Confidential"
    assert items.set_index("item_id").loc["302", "year"] == 1997
    assert items.set_index("item_id").loc["302", "genres"] == "Action"
    assert items.set_index("item_id").loc["242", "genres"] == ""


def test_ml100k_loader_names_missing_file(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="u.data"):
        load_ml100k(tmp_path)
