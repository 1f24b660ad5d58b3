"""The base of every config model."""

from pydantic import BaseModel, ConfigDict

__all__ = ["StrictModel"]


class StrictModel(BaseModel):
    """Unknown keys are errors and values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
