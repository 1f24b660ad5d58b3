"""Input data sources: the seeded sample generator and the MovieLens ml-100k loader."""

from profile_features.datasets.movielens import load_ml100k
from profile_features.datasets.sample import SampleData, generate_sample

__all__ = ["SampleData", "generate_sample", "load_ml100k"]
