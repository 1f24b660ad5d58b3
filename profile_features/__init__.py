"""profile-features: LLM user profiles, distilled student embeddings and GBDT-ready
semantic columns, built by Spark batch jobs and served from Feast.

The base package imports with pandas/pyarrow/pydantic only; Spark, torch, Feast
and the encoder are optional extras imported where they are used.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
