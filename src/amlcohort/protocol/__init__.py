"""amlcohort.protocol."""
