"""Train one of srzoo's lightweight networks on natural images, reproducibly, on a CPU or GPU.

This is the script behind srzoo's own packaged default models (``srzoo.load_default``). It
trains on the images under ``--data`` (by default ``../shared/data/train``: BSD100 and
Sun-Hays80, which share no image with Set5 or Set14; PNG or lossless WebP), making the
low-resolution inputs with srzoo's MATLAB-exact ``imresize``, and picks nothing by any
benchmark: a fixed 10-image split of the training folders is the only validation, and the last
checkpoint is the one written.

Everything that decides the result is logged to ``<out>.json``: seed, the sorted list of
training and validation files, hyper-parameters, iterations, device, wall time, and the
validation Y-PSNR over time. The weights and the log are rewritten at every validation, so a
run that is stopped still leaves its latest checkpoint. ``--budget-s`` picks the number of
iterations that fits a time budget on the machine at hand (timed on a throwaway copy before
training); the log records that number, and passing it as ``--iters`` repeats the run. On a CPU a
repeated run gives the same weights; on a GPU, cuDNN's choice of algorithms can make them differ
in the last bits.

The shipped weights came from these runs (logs in ``examples/logs/``; GPU: one H100):
    python examples/train_default.py --arch safmn --scale 4 --device cuda --batch 32 \
        --patch 64 --val-every 1000 --half --budget-s 310 --out safmn_x4.safetensors
    python examples/train_default.py --arch safmn --scale 4 --device cuda --batch 32 \
        --patch 64 --val-every 1000 --half --budget-s 135 --lr 3e-4 \
        --init safmn_x4.safetensors --out safmn_srzoo_x4.safetensors
    python examples/train_default.py --arch safmn --scale 2 --device cuda --batch 32 \
        --patch 64 --val-every 1000 --half --budget-s 180 \
        --init safmn_x4.safetensors --out safmn_srzoo_x2.safetensors
(x3 as x2.) On a CPU, leave out ``--device`` and set ``--iters``; ``--threads`` caps the cores.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import srzoo
from srzoo.data import augment_pair, list_images, lr_from_hr, random_crop_pair, read_rgb
from srzoo.train import psnr_on, seed_everything

# Runs last hours in the background: show progress as it happens, not when a buffer fills.
print = functools.partial(print, flush=True)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
N_VAL = 10


# Lossless formats only: the pixels, not the file format, are the training data.
SUFFIXES = (".png", ".webp")

Pair = tuple[torch.Tensor, torch.Tensor]  # (LR, HR), uint8 (3, H, W) on the training device


def make_pairs(files: list[Path], scale: int, device: torch.device) -> list[Pair]:
    """HR cropped to a multiple of ``scale`` and its LR by srzoo's MATLAB-exact ``imresize``.

    uint8 tensors resize in float64 with MATLAB's per-pass rounding on any device, so the LR
    images are the same on a CPU and a GPU.
    """
    return [lr_from_hr(read_rgb(f).to(device), scale) for f in files]


def sample_batch(
    pairs: list[Pair], batch: int, patch: int, scale: int, rng: random.Random
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random aligned LR/HR crops with a random flip and 90-degree rotation each, in [0, 1]."""
    lrs, hrs = [], []
    for _ in range(batch):
        lr, hr = pairs[rng.randrange(len(pairs))]
        lp, hp = random_crop_pair(lr, hr, patch_size=patch, scale=scale, rng=rng)
        lp, hp = augment_pair(lp, hp, rng)
        lrs.append(lp)
        hrs.append(hp)
    return torch.stack(lrs).float() / 255.0, torch.stack(hrs).float() / 255.0


LOSSES = {"l1": srzoo.losses.L1(), "l2": F.mse_loss}


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    lr_t: torch.Tensor,
    hr_t: torch.Tensor,
    loss_name: str = "l1",
) -> torch.Tensor:
    loss = LOSSES[loss_name](model(lr_t), hr_t)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def iterations_for_budget(
    model: torch.nn.Module, pairs: list[Pair], args: argparse.Namespace, device: torch.device
) -> tuple[int, float]:
    """How many iterations fit in ``--budget-s`` seconds, timed on a throwaway copy.

    The copy, its optimiser and its random crops are discarded, so a run with ``--iters`` set
    to the returned number trains exactly as this one does.
    """
    probe = copy.deepcopy(model)
    opt = torch.optim.Adam(probe.parameters(), lr=args.lr, betas=(0.9, 0.99))
    rng = random.Random(-1 - args.seed)

    def run(n: int) -> None:
        for _ in range(n):
            batch = sample_batch(pairs, args.batch, args.patch, args.scale, rng)
            train_step(probe, opt, *batch, args.loss)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    run(10)  # warm-up: cuDNN algorithm search, allocator
    t = time.perf_counter()
    n = 40
    run(n)
    per_iter = (time.perf_counter() - t) / n
    # Validation and logging also take time: keep a margin.
    return max(1, int(0.85 * args.budget_s / per_iter)), per_iter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="pan")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument(
        "--budget-s",
        type=float,
        help="instead of --iters: as many iterations as fit in this many seconds, timed on this "
        "machine before training (the log records the number, to rerun with --iters)",
    )
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="low-resolution patch size")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--loss", choices=sorted(LOSSES), default="l1", help="l2 (MSE) suits a final stage for PSNR"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--init", type=Path, help="start from these weights (matching tensors only)")
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--arg", action="append", default=[], help="constructor override k=v")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--half", action="store_true", help="store the weights as float16")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    rng = random.Random(args.seed)

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    files = list_images(args.data, suffixes=SUFFIXES)
    if not files:
        raise SystemExit(f"no training images under {args.data}")
    val_files = files[:: max(1, len(files) // N_VAL)][:N_VAL]
    train_files = [f for f in files if f not in val_files]
    overrides: dict[str, Any] = {}
    for item in args.arg:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)

    start = time.time()
    train_pairs = make_pairs(train_files, args.scale, device)
    val_pairs = make_pairs(val_files, args.scale, device)
    print(f"data: {len(train_pairs)} train, {len(val_pairs)} val ({time.time() - start:.0f} s)")

    model = srzoo.create(args.arch, args.scale, **overrides).to(device)
    if args.init is not None:
        init = load_file(str(args.init))
        own = model.state_dict()
        fitting = {k: v for k, v in init.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict({k: v.float() for k, v in fitting.items()}, strict=False)
        print(f"init: {len(fitting)} of {len(own)} tensors from {args.init}")
    params = sum(p.numel() for p in model.parameters())
    if args.budget_s is not None:
        args.iters, per_iter = iterations_for_budget(model, train_pairs, args, device)
        print(f"budget {args.budget_s:.0f} s at {per_iter * 1e3:.1f} ms/iter: {args.iters} iters")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, args.iters) / args.iters))
    )
    history: list[dict[str, float]] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def write(iters_done: int) -> None:
        """Weights and log as of now: a run stopped early still leaves its last checkpoint."""
        state = {
            k: (v.half() if args.half and v.is_floating_point() else v).contiguous().cpu()
            for k, v in model.state_dict().items()
        }
        tmp = args.out.with_name(args.out.name + ".tmp")
        save_file(state, str(tmp), metadata={"arch": args.arch, "scale": str(args.scale)})
        tmp.replace(args.out)
        log = {
            "arch": args.arch,
            "scale": args.scale,
            "overrides": overrides,
            "params": params,
            "seed": args.seed,
            "iters": args.iters,
            "iters_done": iters_done,
            "complete": iters_done == args.iters,
            "batch": args.batch,
            "patch": args.patch,
            "lr": args.lr,
            "loss": args.loss,
            "schedule": "cosine to 0, Adam(0.9, 0.99), flips and 90-degree rotations",
            "budget_s": args.budget_s,
            "threads": torch.get_num_threads(),
            "device": args.device,
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "init": str(args.init) if args.init else None,
            "train_files": [str(f.relative_to(args.data)) for f in train_files],
            "val_files": [str(f.relative_to(args.data)) for f in val_files],
            "wall_time_s": time.time() - start,
            "torch": torch.__version__,
            "history": history,
        }
        args.out.with_suffix(".json").write_text(json.dumps(log, indent=1) + "\n")

    train_start = time.time()
    loss_sum = torch.zeros((), device=device)
    last = 0
    for it in range(1, args.iters + 1):
        batch = sample_batch(train_pairs, args.batch, args.patch, args.scale, rng)
        loss_sum = loss_sum + train_step(model, opt, *batch, args.loss)
        sched.step()
        if it % args.val_every == 0 or it == args.iters:
            val = psnr_on(model, val_pairs, scale=args.scale)
            elapsed = time.time() - train_start
            mean_loss = loss_sum.item() / (it - last)
            history.append({"iter": it, "loss": mean_loss, "val_psnr_y": val, "s": elapsed})
            print(f"iter {it}: loss {mean_loss:.4f}  val Y-PSNR {val:.3f} dB  {elapsed:.0f} s")
            loss_sum.zero_()
            last = it
            write(it)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
