"""amlcohort.io."""
