from __future__ import annotations

import torch

# Two cores on the CI machine: more threads than that only add contention.
torch.set_num_threads(min(2, torch.get_num_threads()))
