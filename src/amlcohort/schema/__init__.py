"""The cohort model (single source of truth for tables, columns, types, units)."""

from amlcohort.schema.model import TABLES, TABLES_BY_NAME, Column, Table, Unit, study_day_column, table

__all__ = ["TABLES", "TABLES_BY_NAME", "Column", "Table", "Unit", "study_day_column", "table"]
