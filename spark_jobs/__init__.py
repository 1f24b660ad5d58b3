"""Thin spark-submit entry files; each runs one stage of `profile_features.spark.registry.STAGES`."""
