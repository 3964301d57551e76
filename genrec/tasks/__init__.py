"""Training data: prompt templates and alignment tasks as (prompt, target) pairs (prefix mode), and whole histories
as one token sequence (sequence mode)."""

from genrec.tasks.prompts import TASKS, TEMPLATES, Prompter, build_task_dataset
from genrec.tasks.sequence import SequenceFormat

__all__ = ["TASKS", "TEMPLATES", "Prompter", "SequenceFormat", "build_task_dataset"]
