"""The semantic job on Spark refuses vectors of two encoders in one snapshot."""

import numpy as np
import pandas as pd
import pytest


@pytest.mark.spark
def test_semantic_job_refuses_vectors_of_two_encoders_in_one_snapshot(tmp_path, spark):
    """Two backends' vectors in one snapshot (a rerun with another embedding.backend over part of it)
    cannot share a transform: the job stops naming the table and both encoders."""
    from profile_features.config import JobConfig
    from profile_features.spark.registry import run_stage

    rng = np.random.default_rng(0)
    folder = tmp_path / "data" / "user_profile_embeddings" / "run_date=2026-01-01"
    folder.mkdir(parents=True)
    pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(40)],
            "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC"),
            "profile_embedding": list(rng.normal(size=(40, 8)).astype(np.float32)),
            "encoder": ["all-MiniLM-L6-v2", "all-MiniLM-L6-v2+openvino-bf16-0123abcd"] * 20,
        }
    ).to_parquet(folder / "part-0.parquet", index=False)
    config = JobConfig(data_dir=str(tmp_path / "data"), history={"cutoff": "2026-01-01T00:00:00Z"})
    with pytest.raises(ValueError, match=r"user_profile_embeddings/run_date=2026-01-01: vectors of 2 encoders"):
        run_stage(spark, config, "semantic_columns")
