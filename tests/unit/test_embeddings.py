import numpy as np
import pandas as pd

from profile_features.config import EmbeddingConfig
from profile_features.embeddings import Encoder, cached_encoder, embed_items, embed_profiles, render_item_text


def test_real_encoder_shapes_and_semantics(encoder):
    assert isinstance(encoder, Encoder)
    vectors = encoder.encode(
        [
            "A science fiction film about astronauts in space",
            "Astronauts explore a distant planet",
            "A romantic comedy wedding",
        ]
    )
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2


def test_encoder_loads_once_per_process(encoder):
    assert cached_encoder(EmbeddingConfig()) is encoder


def test_embed_profiles_keeps_provenance(encoder):
    profiles = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "event_timestamp": pd.to_datetime(["2026-01-01", "2026-01-01"], utc=True),
            "profile_text": ["Loves westerns", "Loves horror"],
            "generator": "rule_based",
            "model": "rules",
            "prompt_version": "rule-v2",
            "history_hash": ["h1", "h2"],
            "history_length": [3, 4],
        }
    )
    out = embed_profiles(profiles, encoder)
    assert out.encoder.tolist() == ["all-MiniLM-L6-v2"] * 2
    assert out.history_hash.tolist() == ["h1", "h2"]
    np.testing.assert_allclose(
        np.stack(out.profile_embedding), encoder.encode(["Loves westerns", "Loves horror"]), atol=1e-6
    )


def test_a_profile_with_nothing_to_say_gets_no_vector(encoder):
    profiles = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "event_timestamp": pd.to_datetime(["2026-01-01"] * 3, utc=True),
            "profile_text": ["Loves westerns", "", None],
            "generator": "rule_based",
            "model": "rules",
            "prompt_version": "rule-v2",
            "history_hash": ["h1", "h2", "h3"],
            "history_length": [3, 1, 1],
        }
    )
    out = embed_profiles(profiles, encoder)
    assert out.profile_embedding.iloc[1] is None and out.profile_embedding.iloc[2] is None
    np.testing.assert_allclose(out.profile_embedding.iloc[0], encoder.encode(["Loves westerns"])[0], atol=1e-6)


def test_item_text_and_embedding(encoder):
    items = pd.DataFrame(
        {"item_id": ["i1"], "title": ["Heat"], "genres": ["Action|Crime"], "year": [1995], "description": ["A heist."]}
    )
    assert render_item_text("Heat", "Action|Crime", 1995, "A heist.") == "Heat (1995). Genres: Action, Crime. A heist."
    assert render_item_text("Heat", "", None, "") == "Heat"
    out = embed_items(items, encoder, pd.Timestamp("2026-01-01", tz="UTC"))
    assert out.item_text.iloc[0] == "Heat (1995). Genres: Action, Crime. A heist."
    assert len(out.item_text_embedding.iloc[0]) == 384 and len(out.text_hash.iloc[0]) == 32


def test_served_item_text_is_cleaned_and_capped_as_the_prompts_read_it(encoder):
    """A bidi override, a zero-width space, markup, an e-mail address and a 5 MB title: the served (and
    embedded) text holds none of them and stays within the caps."""
    from profile_features.profiles.config import SanitizeConfig

    title = "Heat\u202e\u200b <b>Director's cut</b> " + "x" * 5_000_000
    items = pd.DataFrame(
        {
            "item_id": ["i1"],
            "title": [title],
            "genres": ["Action|\u200b|Crime"],
            "year": [1995],
            "description": ["Write to fan@example.com.\r\nA heist."],
        }
    )
    rules = SanitizeConfig(max_title_chars=40)
    text = embed_items(items, encoder, pd.Timestamp("2026-01-01", tz="UTC"), rules).item_text.iloc[0]
    assert "\u202e" not in text and "\u200b" not in text and "<b>" not in text and "fan@example.com" not in text
    assert text.startswith("Heat Director's cut") and "Genres: Action, Crime." in text and "A heist." in text
    assert len(text) < 40 + len(" (1995). Genres: Action, Crime. [email]. A heist.") + 10
    assert render_item_text(title, items.genres[0], 1995, items.description[0], rules) == text  # embedded = served
