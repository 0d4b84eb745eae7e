"""Train one of srzoo's lightweight networks on natural images, reproducibly, on a CPU or GPU.

This is the script behind srzoo's own packaged default models. It trains on the images under
``--data`` (by default ``../shared/data/train``: BSD100 and Sun-Hays80, which share no image
with Set5 or Set14), making the low-resolution inputs with srzoo's MATLAB-exact ``imresize``, and
picks nothing by any benchmark: a fixed 10-image split of the training folders is the only
validation, and the last checkpoint is the one written.

Everything that decides the result is logged to ``<out>.json``: seed, the sorted list of
training and validation files, hyper-parameters, iterations, wall time, and the validation
Y-PSNR over time. Runs with the same arguments on the same machine give the same weights.

Usage:
    python examples/train_default.py --arch pan --scale 4 --iters 20000 \
        --out srzoo/weights/pan_x4.safetensors
    python examples/train_default.py --arch pan --scale 2 --init srzoo/weights/pan_x4.safetensors \
        --iters 10000 --out srzoo/weights/pan_x2.safetensors
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file

import srzoo
from srzoo.metrics import imresize, psnr

# Runs last hours in the background: show progress as it happens, not when a buffer fills.
print = functools.partial(print, flush=True)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "train"
N_VAL = 10


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def make_pairs(files: list[Path], scale: int) -> list[tuple[np.ndarray, np.ndarray]]:
    pairs = []
    for f in files:
        hr = read_rgb(f)
        h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
        hr = np.ascontiguousarray(hr[:h, :w])
        pairs.append((imresize(hr, scale=1.0 / scale), hr))
    return pairs


def sample_batch(
    pairs: list[tuple[np.ndarray, np.ndarray]],
    batch: int,
    patch: int,
    scale: int,
    rng: random.Random,
) -> tuple[torch.Tensor, torch.Tensor]:
    lrs, hrs = [], []
    for _ in range(batch):
        lr, hr = pairs[rng.randrange(len(pairs))]
        y = rng.randrange(lr.shape[0] - patch + 1)
        x = rng.randrange(lr.shape[1] - patch + 1)
        lp = lr[y : y + patch, x : x + patch]
        hp = hr[y * scale : (y + patch) * scale, x * scale : (x + patch) * scale]
        k = rng.randrange(4)
        flip = rng.random() < 0.5
        lp, hp = np.rot90(lp, k), np.rot90(hp, k)
        if flip:
            lp, hp = lp[:, ::-1], hp[:, ::-1]
        lrs.append(np.ascontiguousarray(lp))
        hrs.append(np.ascontiguousarray(hp))

    def to_tensor(arrs: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255.0

    return to_tensor(lrs), to_tensor(hrs)


@torch.no_grad()
def validate(
    model: torch.nn.Module, pairs: list[tuple[np.ndarray, np.ndarray]], scale: int
) -> float:
    model.eval()
    scores = []
    for lr, hr in pairs:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255.0
        sr = model(x).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
        scores.append(psnr(sr, hr[: sr.shape[0], : sr.shape[1]], crop_border=scale, y_channel=True))
    model.train()
    return float(np.mean(scores))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--arch", default="pan")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="low-resolution patch size")
    ap.add_argument("--lr", type=float, default=1e-3)
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
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    files = sorted(p for p in args.data.rglob("*.png"))
    if not files:
        raise SystemExit(f"no training images under {args.data}")
    val_files = files[:: max(1, len(files) // N_VAL)][:N_VAL]
    train_files = [f for f in files if f not in val_files]
    overrides: dict[str, Any] = {}
    for item in args.arg:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)

    start = time.time()
    train_pairs = make_pairs(train_files, args.scale)
    val_pairs = make_pairs(val_files, args.scale)
    print(f"data: {len(train_pairs)} train, {len(val_pairs)} val ({time.time() - start:.0f} s)")

    model = srzoo.create(args.arch, args.scale, **overrides).to(args.device)
    if args.init is not None:
        init = load_file(str(args.init))
        own = model.state_dict()
        fitting = {k: v for k, v in init.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict({k: v.float() for k, v in fitting.items()}, strict=False)
        print(f"init: {len(fitting)} of {len(own)} tensors from {args.init}")
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, args.iters) / args.iters))
    )
    history: list[dict[str, float]] = []
    train_start = time.time()
    running = 0.0
    for it in range(1, args.iters + 1):
        lr_t, hr_t = sample_batch(train_pairs, args.batch, args.patch, args.scale, rng)
        loss = F.l1_loss(model(lr_t.to(args.device)), hr_t.to(args.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += loss.item()
        if it % args.val_every == 0 or it == args.iters:
            val = validate(model, val_pairs, args.scale)
            elapsed = time.time() - train_start
            history.append(
                {"iter": it, "loss": running / args.val_every, "val_psnr_y": val, "s": elapsed}
            )
            mean_loss = running / args.val_every
            print(f"iter {it}: loss {mean_loss:.4f}  val Y-PSNR {val:.3f} dB  {elapsed:.0f} s")
            running = 0.0

    state = {
        k: (v.half() if args.half and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out), metadata={"arch": args.arch, "scale": str(args.scale)})
    log = {
        "arch": args.arch,
        "scale": args.scale,
        "overrides": overrides,
        "params": params,
        "seed": args.seed,
        "iters": args.iters,
        "batch": args.batch,
        "patch": args.patch,
        "lr": args.lr,
        "schedule": "cosine to 0, Adam(0.9, 0.99), L1 loss, flips and 90-degree rotations",
        "threads": torch.get_num_threads(),
        "device": args.device,
        "init": str(args.init) if args.init else None,
        "train_files": [str(f.relative_to(args.data)) for f in train_files],
        "val_files": [str(f.relative_to(args.data)) for f in val_files],
        "wall_time_s": time.time() - start,
        "torch": torch.__version__,
        "history": history,
    }
    args.out.with_suffix(".json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
