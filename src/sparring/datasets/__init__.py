"""Import and export of real red-team formats (hh-rlhf pairs, the released red-team file, goal lists)."""
