"""Data: the schema, readers for public datasets, and the leave-one-out split."""

from genrec.data.schema import DataError, InteractionData
from genrec.data.split import Example, LeaveOneOutSplit, leave_one_out

__all__ = ["DataError", "Example", "InteractionData", "LeaveOneOutSplit", "leave_one_out"]
