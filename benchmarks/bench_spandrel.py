"""Forward time of every registered model against spandrel's, on the same weights.

For each name (default: every registered model), builds srzoo's network in its registered
configuration with seeded random weights, hands the state dict to spandrel's own loader (which
detects the architecture from the keys, as it does for users' files), checks that both give the
same output, and times both in this process, alternating runs so that background load affects
both alike. Sizes follow the project's convention: 64x64 inputs for networks with global
operations (attention, pooling), 256x256 for translation-local convnets; x4 where the model has
it, else its default scale.

Prints one row per model: input size, median milliseconds of srzoo and spandrel, the ratio
srzoo / spandrel (below 1.0: srzoo is faster) and the largest relative difference of the
outputs. Models spandrel does not load from srzoo's state dict (families it lacks, or layouts
srzoo converts on the way in) are listed with the reason and not timed.

Usage: python benchmarks/bench_spandrel.py [NAME ...] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

import srzoo


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _spandrel(state: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], object]:
    from spandrel import ModelLoader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = ModelLoader().load_from_state_dict(state)
    loaded.model.eval()
    # IPT's network takes 48x48 patches only: spandrel's descriptor runs the authors' chop
    # (and clamps to [0, 1], as srzoo's own outputs are compared anyway).
    return loaded if loaded.architecture.id == "IPT" else loaded.model


def bench(name: str, repeats: int) -> str:
    spec = srzoo.model_info(name)
    scale = 4 if 4 in spec.scales else spec.scale
    torch.manual_seed(0)
    ours = srzoo.load(name, scale=scale, weights=None)
    local = isinstance(getattr(ours, "receptive_field", None), int)
    size = 256 if local else 64
    state = {k: v.contiguous() for k, v in ours.state_dict().items()}
    try:
        ref = _spandrel(state)
    except Exception as error:
        return f"{name:<28} not timed: spandrel does not load it ({type(error).__name__})"
    x = torch.rand(1, ours.in_channels, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = ours(x), ref(x)
        if isinstance(b, tuple):  # MM-RealSR's network returns (image, estimated degrees)
            b = b[0]
        assert isinstance(b, torch.Tensor)
        if a.shape != b.shape:
            return f"{name:<28} not timed: output {tuple(a.shape)} vs spandrel {tuple(b.shape)}"
        diff = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
        ta: list[float] = []
        tb: list[float] = []
        for _ in range(repeats):
            ta.append(_time(lambda: ours(x)))
            tb.append(_time(lambda: ref(x)))
    ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
    # A difference means the two run different defaults (Omni-SR: srzoo maps to the authors'
    # [-1, 1] range inside); the family's tests compare them on equal settings.
    note = "  (defaults differ)" if diff > 1e-4 else ""
    return f"{name:<28} {size:>4} {ma:>10.1f} {mb:>10.1f} {ma / mb:>7.3f} {diff:>10.1e}{note}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registered names (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.names or srzoo.list_models()
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} runs")
    print(
        f"{'model':<28} {'size':>4} {'srzoo ms':>10} {'spandrel':>10} {'ratio':>7} {'rel diff':>10}"
    )
    for name in names:
        print(bench(name, args.repeats), flush=True)


if __name__ == "__main__":
    main()
