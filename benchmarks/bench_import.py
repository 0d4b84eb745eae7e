"""How much time ``import srzoo`` adds to ``import torch``.

Runs ``python -X importtime -c "import srzoo"`` several times in fresh interpreters and prints
the median cumulative import time of torch and of srzoo (which includes torch), and the
difference. Goal: srzoo adds at most 0.3 s.

Usage: python benchmarks/bench_import.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys


def _one_run() -> tuple[float, float]:
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import srzoo"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    cumulative: dict[str, float] = {}
    for line in err.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            cumulative[parts[2].strip()] = int(parts[1]) / 1e6
    return cumulative["torch"], cumulative["srzoo"]


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    results = [_one_run() for _ in range(runs)]
    torch_s = statistics.median(t for t, _ in results)
    srzoo_s = statistics.median(s for _, s in results)
    added = statistics.median(s - t for t, s in results)
    print(f"import torch: {torch_s:.3f} s   import srzoo (incl. torch): {srzoo_s:.3f} s")
    print(f"srzoo adds {added:.3f} s to import torch (median of {runs}; goal <= 0.300 s)")


if __name__ == "__main__":
    main()
