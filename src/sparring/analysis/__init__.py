"""Statistics over red-team results (bootstrap intervals now; the paper's full analyses later)."""
