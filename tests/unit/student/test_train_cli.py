import json

import numpy as np
import pandas as pd

from profile_features.student.checkpoint import load_checkpoint
from profile_features.student.train import main


def test_train_cli_writes_a_loadable_checkpoint(tmp_path, cyclic_data, capsys):
    inter, seqs, _, profiles = cyclic_data
    inter.to_parquet(tmp_path / "inter.parquet")
    users = sorted(profiles)
    pd.DataFrame({"user_id": users, "profile_embedding": [profiles[u].tolist() for u in users]}).to_parquet(
        tmp_path / "prof.parquet"
    )
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "body:\n  hidden_size: 16\n  num_blocks: 1\n  max_len: 10\ntrain:\n  epochs: 2\n  eval_every: "
        "1\n  num_threads: 1\n"
    )
    rc = main(
        [
            "--config",
            str(cfg),
            "--interactions",
            str(tmp_path / "inter.parquet"),
            "--profiles",
            str(tmp_path / "prof.parquet"),
            "--out",
            str(tmp_path / "ckpt"),
            "--validate",
            "--set",
            "train.lr=0.01",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert "epoch 2/2" in captured.err
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.checkpoint_id == report["checkpoint_id"]
    assert loaded.config.train.lr == 0.01 and loaded.config.body.hidden_size == 16
    assert loaded.stats.users_with_profile == len(users) and loaded.stats.extra["best_epoch"] in (1, 2)
    assert np.isfinite(loaded.model.fallback_profile.numpy()).all()
