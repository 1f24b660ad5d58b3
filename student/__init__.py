"""The distilled student: SASRec trained to predict each user's LLM profile embedding.

Installed as `profile_features.student` (the folder stays `student/`). Parts: `body` (embeddings +
causal blocks), `pooling`, `heads` (next-item head, profile target transform, distillation head),
`losses`, `model` (assembly), `training`, `guard` (what ships: validated like deployment, with a
fallback chain), `evaluation`, `checkpoint`, `scoring` (pure pandas scoring for Spark), `train` (CLI:
`python -m profile_features.student.train`).
Needs torch and safetensors (the `torch` extra).
"""

from profile_features.student.checkpoint import DataStats, LoadedStudent, load_checkpoint, save_checkpoint
from profile_features.student.config import StudentConfig, load_student_config
from profile_features.student.model import StudentModel
from profile_features.student.scoring import load_student, score_users
from profile_features.student.training import build_training_data, fit

__all__ = [
    "DataStats",
    "LoadedStudent",
    "StudentConfig",
    "StudentModel",
    "build_training_data",
    "fit",
    "load_checkpoint",
    "load_student",
    "load_student_config",
    "save_checkpoint",
    "score_users",
]
