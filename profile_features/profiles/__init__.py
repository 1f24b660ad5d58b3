"""Profile generators (behind the `ProfileGenerator` Protocol) and the profile stage.

LLM backends live in `profile_features.profiles.llm`; `make_generator` picks one from the config."""

from profile_features.profiles.base import GeneratedProfile, ProfileGenerator, UserHistory
from profile_features.profiles.rule_based import RuleBasedProfileWriter
from profile_features.profiles.stage import generate_profiles, generator_key, make_generator

__all__ = [
    "GeneratedProfile",
    "ProfileGenerator",
    "UserHistory",
    "RuleBasedProfileWriter",
    "generate_profiles",
    "generator_key",
    "make_generator",
]
