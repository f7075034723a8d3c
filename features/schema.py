"""The input contract: which columns each input file has, how they are named, and the error a bad file raises.

The canonical in-memory frames that every other module works on:

- transactions: ``customer_id`` (str), ``timestamp`` (datetime64[ns], naive, meaning UTC), ``amount``
  (float64; negative = refund), optional ``order_id`` (str), ``quantity`` (float64), ``category`` and
  ``channel`` (str).
- customers: ``customer_id``, optional ``signup_date`` (datetime64[ns] naive UTC), other attributes.
- interactions: ``customer_id``, ``timestamp``, ``kind`` (str), optional ``score`` (float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

TRANSACTION_REQUIRED = ("customer_id", "timestamp", "amount")
TRANSACTION_OPTIONAL = ("order_id", "quantity", "category", "channel")
CUSTOMER_REQUIRED = ("customer_id",)
INTERACTION_REQUIRED = ("customer_id", "timestamp", "kind")
INTERACTION_OPTIONAL = ("score",)


class ColumnMapping(BaseModel):
    """Maps canonical column names to the names used in a user's file (``{canonical: in_file}``)."""

    model_config = ConfigDict(extra="forbid")

    transactions: dict[str, str] = Field(default_factory=dict)
    customers: dict[str, str] = Field(default_factory=dict)
    interactions: dict[str, str] = Field(default_factory=dict)


class DataConfig(BaseModel):
    """How input files are read: column names, and which columns are personal data."""

    model_config = ConfigDict(extra="forbid")

    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    # Never features, never logged, never echoed in error messages or service logs.
    personal_data_columns: list[str] = Field(default_factory=lambda: ["name", "email", "phone", "address"])
    # Rows shown in an error message to illustrate what is wrong.
    error_sample_rows: int = Field(default=5, ge=1, le=50)


@dataclass
class DataError(Exception):
    """A bad input file: names the file, the column and a sample of the offending rows."""

    path: Path | str
    problem: str
    column: str | None = None
    sample: pd.DataFrame | None = None

    def __str__(self) -> str:
        where = f"{self.path}" + (f", column '{self.column}'" if self.column else "")
        message = f"{where}: {self.problem}"
        if self.sample is not None and len(self.sample):
            message += "\nsample of bad rows:\n" + self.sample.to_string(max_colwidth=40)
        return message
