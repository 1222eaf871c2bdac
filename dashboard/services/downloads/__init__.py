"""The download engine: sources (where bytes come from), transfer (one file), manager (jobs)."""
