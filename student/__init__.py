"""The distilled student: SASRec trained to predict each user's LLM profile embedding.

Parts: `student.body` (embeddings + causal blocks), `student.pooling`, `student.heads`
(next-item head, profile target transform, distillation head), `student.losses`,
`student.model` (assembly), `student.training`, `student.guard` (what ships: validated like
deployment, with a fallback chain), `student.evaluation`, `student.checkpoint`,
`student.scoring` (pure pandas scoring for Spark), `student.train` (CLI).
Needs torch and safetensors (the `torch` extra).
"""

from student.checkpoint import DataStats, LoadedStudent, load_checkpoint, save_checkpoint
from student.config import StudentConfig, load_student_config
from student.model import StudentModel
from student.scoring import load_student, score_users
from student.training import build_training_data, fit

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
