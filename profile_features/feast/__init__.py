"""Feast definitions built from config, to drop into any feature repo.

    from profile_features.feast import build_definitions, load_feast_settings
    definitions = build_definitions(load_feast_settings("profile_features.yaml"))
    globals().update(definitions.objects())   # feast apply picks these up

The shipped `feature_repo/` does exactly this.
"""

from profile_features.feast.definitions import Definitions, build_definitions, service_columns
from profile_features.feast.settings import EntitySettings, FeastSettings, load_feast_settings

__all__ = [
    "Definitions",
    "EntitySettings",
    "FeastSettings",
    "build_definitions",
    "load_feast_settings",
    "service_columns",
]
