"""The plugin's feature definitions, built from profile_features.yaml.

In your own repo, these three lines are all you need.
"""

from pathlib import Path

from profile_features.feast import build_definitions, load_feast_settings

definitions = build_definitions(load_feast_settings(Path(__file__).with_name("profile_features.yaml")))
# feast apply collects the Feast objects it finds at module level.
globals().update(definitions.objects())
