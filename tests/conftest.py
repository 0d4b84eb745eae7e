from __future__ import annotations

import os

import torch

# Two cores on the CI machine: more threads than that only add contention. Under pytest-xdist
# the workers share them.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads()) // _workers))
