"""The paper's analyses of red-team results: cells, mixed effects, ratings, tags, agreement, the attack map, the report."""
