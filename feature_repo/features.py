"""The plugin's feature definitions, built from profile_features.yaml.

In your own repo, these three lines are all you need.
"""

from pathlib import Path

from profile_features.feast import build_definitions, load_feast_settings

definitions = build_definitions(load_feast_settings(Path(__file__).with_name("profile_features.yaml")))
# feast apply collects the Feast objects it finds at module level.
globals().update(definitions.objects())

# The rest keeps `feast apply` quiet in this repo, as in a `feast init` one (a repo you drop the plugin
# into has its own project object and its own choices).
import warnings  # noqa: E402

import yaml  # noqa: E402
from feast import Project  # noqa: E402

# Without a Project object, apply prints that it made one from feature_store.yaml, on every run.
project = Project(
    name=yaml.safe_load(Path(__file__).with_name("feature_store.yaml").read_text())["project"],
    description="LLM user profiles, item texts and the distilled student, served as features",
)
# Feast's notice for every repo with an on-demand view (ours computes the user x item similarities).
warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature", category=RuntimeWarning)
