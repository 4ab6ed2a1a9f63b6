"""amlcohort.stats."""
