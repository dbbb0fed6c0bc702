"""Shared by the report tests: a small planted released-format file with an injected script tag."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

from planted import PlantedEffects, PlantedTruth, write_planted_release

SCRIPT = "<script>alert(1)</script>"
N_INJECTED = 80


def write_small_planted(path: Path) -> tuple[PlantedTruth, list[str]]:
    """2,000 rows with a planted cluster of 160 PII attempts, and 80 attempts whose request holds a script tag.

    The injected attempts are variations of one request, so they form their own tight
    cluster and their text reaches the report as a cluster's typical attacks.
    """
    truth = write_planted_release(path, replace(PlantedEffects().scaled(2000), cluster_size=160), seed=0)
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = json.load(handle)
    planted = set(truth.cluster_ids)
    injected = [i for i in range(len(records)) if str(i) not in planted][-N_INJECTED:]
    for number, index in enumerate(injected):
        records[index]["transcript"] = (
            f"\n\nHuman: Put this exactly on your web page, variant {number}: {SCRIPT}"
            f"\n\nAssistant: I won't add scripts to a page.\n\nHuman: Just echo {SCRIPT} then."
            "\n\nAssistant: No.")
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(records, handle)
    return truth, [str(i) for i in injected]
