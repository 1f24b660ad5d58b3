import numpy as np
import pandas as pd

from profile_features.histories import build_histories
from profile_features.profiles import ProfileGenerator, RuleBasedProfileWriter, generate_profiles


def event(title, genres, year=1995, rating=4.0):
    return {"item_id": title, "title": title, "genres": genres, "year": year, "rating": rating, "timestamp": "", "event_type": "rating", "description": ""}


def test_rule_based_is_a_profile_generator():
    assert isinstance(RuleBasedProfileWriter(), ProfileGenerator)


def test_names_dominant_genres_era_and_titles():
    events = [event(f"Space {i}", ["Sci-Fi"], 1985) for i in range(6)] + [event("Laugh", ["Comedy"], 1975, 2.0)]
    text = RuleBasedProfileWriter().describe(events)
    assert text.startswith("Mostly interested in Sci-Fi (86%) and Comedy (14%) across 7 interactions.")
    assert "1980s" in text
    assert "Representative titles: Space 5, Space 4 and Space 3." in text


def test_detects_recent_shift():
    events = [event(f"D{i}", ["Drama"]) for i in range(12)] + [event(f"W{i}", ["Western"]) for i in range(4)]
    text = RuleBasedProfileWriter().describe(events)
    assert "Recently shifted toward Western" in text
    stable = RuleBasedProfileWriter().describe([event(f"D{i}", ["Drama"]) for i in range(16)])
    assert "matches the long-term taste" in stable


def test_deterministic():
    events = [event("A", ["Drama", "Comedy"]), event("B", ["Comedy", "Drama"])]
    assert RuleBasedProfileWriter().describe(events) == RuleBasedProfileWriter().describe(list(events))


def test_profile_stage_keeps_provenance(small_sample):
    frame = small_sample.interactions.merge(small_sample.items, on="item_id")
    cutoff = small_sample.interactions.timestamp.max()
    histories = build_histories(frame, cutoff.to_pydatetime(), 20)
    profiles = generate_profiles(histories, RuleBasedProfileWriter())
    assert profiles.user_id.tolist() == histories.user_id.tolist()
    assert (profiles.history_hash == histories.history_hash).all()
    assert set(profiles.generator) == {"rule_based"} and set(profiles.prompt_version) == {"rule-v1"}
    assert (profiles.event_timestamp == cutoff).all()
    # the known answer: most users' profiles name their hidden favourite genre first or second
    tastes = small_sample.user_tastes.set_index("user_id")
    named = [tastes.loc[u, "top_genre"] in t.split(" across")[0] for u, t in zip(profiles.user_id, profiles.profile_text)]
    assert sum(named) / len(named) > 0.8


def test_empty_batch():
    empty = pd.DataFrame(columns=["user_id", "event_timestamp", "history_json", "history_hash", "history_length"])
    assert generate_profiles(empty, RuleBasedProfileWriter()).empty


def test_year_from_a_pandas_column_reads_as_a_year():
    # A float column with NaN for the unknown year (what pandas makes of ints and None).
    events = [event("A", ["Drama"], 1995.0), event("B", ["Drama"], float("nan")), event("C", ["Drama"], None),
              event("D", ["Drama"], np.int64(1984))]
    text = RuleBasedProfileWriter().describe(events)
    assert "nan" not in text and ".0s" not in text
    assert "Prefers titles from the 1980s and 1990s." in text or "Prefers titles from the 1990s and 1980s." in text
