"""amlcohort.endpoints."""
