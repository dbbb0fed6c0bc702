"""Run every benchmark, one after another, and print each one's RESULT line.

    python benchmarks/run_all.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = [
    "bench_engine_overhead.py", "bench_endpoint_concurrency.py", "bench_embedded_model.py", "bench_batched_decoding.py",
    "bench_pm_throughput.py",
    "bench_report_scale.py", "bench_web_load.py", "bench_release.py", "bench_attackers.py",
    "bench_replicas.py", "bench_executors.py", "bench_merged_calls.py", "bench_dpo_step.py", "bench_generation_beside_torch.py",
]


def main() -> int:
    here = Path(__file__).parent
    failed = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        failed += subprocess.run([sys.executable, str(here / name)]).returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
