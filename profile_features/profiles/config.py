"""Profile generator settings (the `profile:` section of the job YAML)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from profile_features.strict_model import StrictModel

__all__ = ["ProfileConfig"]


class ProfileConfig(StrictModel):
    """Which profile generator writes the user profiles."""

    generator: Literal["rule_based"] = "rule_based"
    max_titles: int = Field(3, gt=0)
