"""Fine-tune any registered srzoo model on a folder of images, on one device or many.

    python examples/finetune.py edsr-baseline --scale 4 --data photos/ --out my-edsr/
    python examples/finetune.py imdn --scale 4 --data photos/ --weights IMDN_x4.pth --out my-imdn/
    python examples/finetune.py edsr-baseline --scale 3 --from-scale 2 --data photos/ --out x3/
    torchrun --nproc_per_node=4 examples/finetune.py rcan --scale 4 --data photos/ --out my-rcan/

The images under --data (recursively) become aligned (LR, HR) patches: LR by srzoo's
MATLAB-exact bicubic `imresize` (or, with --degradation realesrgan, a Real-ESRGAN-style random
degradation), random crops, flips and 90-degree rotations, every draw keyed by --seed. A fixed
split of --val images (every n-th file) is held out: never trained on, and scored (Y-PSNR, the
papers' protocol) before and after. The result is written with `srzoo.save_pretrained` into
--out, so `srzoo.load("local-dir:OUT")` loads it; --out also holds `train_state.pt` (optimiser,
step, EMA: --resume continues from it, with the batches an uninterrupted run would have had)
and `finetune.json` (arguments, losses, PSNR).

--weights default: the registry's pretrained weights; none: random initialisation; or a path.
--batch is per process: under torchrun with N processes the global batch is N x --batch, and
the run computes what one process with that global batch computes (DistributedDataParallel,
Gloo on CPUs, NCCL on GPUs). --gan adds Real-ESRGAN's recipe: VGG19 perceptual loss (ImageNet
weights through torchvision, or --vgg-weights PATH) and a U-Net discriminator with spectral
normalisation, weights 1 (pixel), 1 (perceptual), 0.1 (GAN).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import srzoo
from srzoo.data import (
    PairedImageDataset,
    RealESRGANDegradation,
    StepBatchSampler,
    list_images,
    lr_from_hr,
    read_rgb,
)
from srzoo.discriminators import UNetDiscriminatorSN
from srzoo.losses import L1, Charbonnier, GANLoss, Loss, Perceptual
from srzoo.train import EMA, DistributedContext, init_distributed, psnr_on, seed_everything, unwrap

STATE_NAME = "train_state.pt"
LOG_NAME = "finetune.json"
# Real-ESRGAN's perceptual layers and weights.
REAL_ESRGAN_LAYERS = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_4": 1.0,
    "conv4_4": 1.0,
    "conv5_4": 1.0,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("name", help="registered model name (srzoo.list_models())")
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--data", type=Path, required=True, help="folder of high-resolution images")
    ap.add_argument("--out", type=Path, required=True, help="folder to write (save_pretrained)")
    ap.add_argument("--weights", default="default", help="'default', 'none', a tag or a path")
    ap.add_argument("--from-scale", type=int, help="load --weights of this scale (new upsampler)")
    ap.add_argument("--steps", type=int, default=1000, help="total optimiser steps")
    ap.add_argument("--batch", type=int, default=16, help="patches per process and step")
    ap.add_argument("--patch", type=int, default=48, help="low-resolution patch size")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--cosine", action="store_true", help="cosine learning-rate decay to 0")
    ap.add_argument("--loss", choices=("l1", "charbonnier"), default="l1")
    ap.add_argument("--gan", action="store_true", help="perceptual + GAN losses (Real-ESRGAN)")
    ap.add_argument("--vgg-weights", default="imagenet", help="'imagenet', a path, or 'none'")
    ap.add_argument("--degradation", choices=("bicubic", "realesrgan"), default="bicubic")
    ap.add_argument("--ema", type=float, default=0.0, help="EMA decay (0: off; 0.999 typical)")
    ap.add_argument("--val", type=int, default=10, help="held-out images (every n-th file)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available")
    ap.add_argument("--save-every", type=int, default=0, help="also save every N steps")
    ap.add_argument("--resume", action="store_true", help=f"continue from --out/{STATE_NAME}")
    ap.add_argument("--arg", action="append", default=[], help="constructor override k=v (JSON)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap.parse_args(argv)


def split_files(files: list[Path], n_val: int) -> tuple[list[Path], list[Path]]:
    """(train, held-out): every n-th file is held out, the same files on every run."""
    if n_val <= 0:
        return files, []
    held = files[:: max(1, len(files) // n_val)][:n_val]
    chosen = set(held)
    train = [f for f in files if f not in chosen]
    if not train:
        raise SystemExit(f"--val {n_val} leaves no training image among {len(files)}")
    return train, held


def build_model(args: argparse.Namespace, overrides: dict[str, Any]) -> nn.Module:
    common = {"channels_last": False, "fuse": False}
    if args.weights == "none":
        return srzoo.create(args.name, args.scale, **overrides)
    model = srzoo.load(
        args.name,
        args.scale,
        weights=args.weights,
        from_scale=args.from_scale,
        **common,
        **overrides,
    )
    report = getattr(model, "srzoo_load_report", None)
    if report is not None:
        print(f"weights: {report}", file=sys.stderr)
    return model


def lr_factor(args: argparse.Namespace, step: int) -> float:
    """Constant, or with --cosine decaying to 0 at --steps."""
    if not args.cosine:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * min(step, args.steps) / args.steps))


def pixel_loss(args: argparse.Namespace) -> Loss:
    return Charbonnier() if args.loss == "charbonnier" else L1()


def save(
    args: argparse.Namespace,
    step: int,
    model: nn.Module,
    ema: EMA | None,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    gan: dict[str, Any] | None,
    log: dict[str, Any],
) -> None:
    """The result (save_pretrained) and everything --resume needs, each replaced atomically."""
    net = unwrap(model)
    srzoo.save_pretrained(ema.module if ema is not None else net, args.out)
    state: dict[str, Any] = {
        "step": step,
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "ema": ema.state_dict() if ema is not None else None,
        "psnr_before": log["psnr_before"],
        "losses": log["losses"],
    }
    if gan is not None:
        state["net_d"] = unwrap(gan["net_d"]).state_dict()
        state["opt_d"] = gan["opt_d"].state_dict()
    tmp = args.out / (STATE_NAME + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, args.out / STATE_NAME)
    (args.out / LOG_NAME).write_text(json.dumps(log, indent=1) + "\n")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ctx: DistributedContext = init_distributed(device=args.device)
    seed_everything(args.seed)
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.arg)}

    files = list_images(args.data)
    if not files:
        raise SystemExit(f"no images under {args.data}")
    train_files, val_files = split_files(files, args.val)
    val_pairs = [lr_from_hr(read_rgb(f), args.scale) for f in val_files] if ctx.is_main else []

    resume_state = None
    if args.resume and (args.out / STATE_NAME).is_file():
        resume_state = torch.load(args.out / STATE_NAME, map_location="cpu", weights_only=True)
        model = srzoo.load(f"local-dir:{args.out}", weights=None, channels_last=False, fuse=False)
        model.load_state_dict(resume_state["model"])
    else:
        model = build_model(args, overrides)
    model.train().to(ctx.device)
    ema = EMA(model, decay=args.ema) if args.ema > 0 else None
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    steps = args.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(lr_factor, args))
    criterion: nn.Module = pixel_loss(args)
    gan: dict[str, Any] | None = None
    if args.gan:
        vgg = None if args.vgg_weights == "none" else args.vgg_weights
        criterion = criterion + Perceptual(REAL_ESRGAN_LAYERS, weights=vgg)
        net_d: nn.Module = UNetDiscriminatorSN().train().to(ctx.device)
        gan = {"net_d": net_d, "loss": GANLoss("vanilla"), "weight": 0.1}
        gan["opt_d"] = torch.optim.Adam(net_d.parameters(), lr=args.lr, betas=(0.9, 0.99))
    criterion.to(ctx.device)

    start_step = 0
    log: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "losses": []}
    if resume_state is not None:
        start_step = int(resume_state["step"])
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        if ema is not None and resume_state["ema"] is not None:
            ema.load_state_dict(resume_state["ema"])
        if gan is not None and "net_d" in resume_state:
            gan["net_d"].load_state_dict(resume_state["net_d"])
            gan["opt_d"].load_state_dict(resume_state["opt_d"])
        log["psnr_before"] = resume_state["psnr_before"]
        log["losses"] = list(resume_state["losses"])
    else:
        log["psnr_before"] = psnr_on(model, val_pairs, scale=args.scale) if val_pairs else None
    if ctx.is_main and log["psnr_before"] is not None:
        print(f"held-out Y-PSNR before: {log['psnr_before']:.3f} dB ({len(val_pairs)} images)")

    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
        if gan is not None:
            gan["net_d"] = DistributedDataParallel(gan["net_d"], device_ids=ids)

    degradation = RealESRGANDegradation() if args.degradation == "realesrgan" else None
    dataset = PairedImageDataset(
        train_files,
        scale=args.scale,
        patch_size=args.patch,
        degradation=degradation,
        seed=args.seed,
    )
    sampler = StepBatchSampler(
        len(dataset),
        batch_size=args.batch,
        steps=steps,
        seed=args.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        start_step=start_step,
    )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=args.workers,
        pin_memory=ctx.device.type == "cuda",
    )
    bar = tqdm(
        total=steps,
        initial=start_step,
        unit="step",
        disable=args.quiet or not ctx.is_main,
        dynamic_ncols=True,
    )
    t0 = time.perf_counter()
    step = start_step
    for lr_t, hr_t in loader:
        lr_t, hr_t = lr_t.to(ctx.device, non_blocking=True), hr_t.to(ctx.device, non_blocking=True)
        sr = model(lr_t)
        loss = criterion(sr, hr_t)
        if gan is not None:
            inner_d = unwrap(gan["net_d"])
            inner_d.requires_grad_(False)  # the generator's step must not train D
            loss = loss + gan["weight"] * gan["loss"](inner_d(sr), True, for_discriminator=False)
            inner_d.requires_grad_(True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if gan is not None:
            d_loss = gan["loss"](gan["net_d"](hr_t), True) + gan["loss"](
                gan["net_d"](sr.detach()), False
            )
            gan["opt_d"].zero_grad(set_to_none=True)
            d_loss.backward()
            gan["opt_d"].step()
        if ema is not None:
            ema.update(model)
        step += 1
        done = step - start_step
        value = loss.detach()
        if ctx.distributed:
            dist.all_reduce(value)
            value /= ctx.world_size
        log["losses"].append(float(value))
        throughput = done * args.batch * ctx.world_size / (time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{float(value):.4f}", img_s=f"{throughput:.1f}")
        if ctx.is_main and args.save_every and step % args.save_every == 0 and step < steps:
            save(args, step, model, ema, opt, sched, gan, log)
    bar.close()

    final = ema.module if ema is not None else unwrap(model)
    if ctx.is_main:
        log["psnr_after"] = psnr_on(final, val_pairs, scale=args.scale) if val_pairs else None
        log["steps"] = step
        log["held_out"] = [str(f) for f in val_files]
        save(args, step, model, ema, opt, sched, gan, log)
        if log["psnr_before"] is not None:
            print(
                f"held-out Y-PSNR after {step} steps: {log['psnr_after']:.3f} dB "
                f"(before: {log['psnr_before']:.3f} dB)"
            )
        print(f"saved to {args.out}: srzoo.load('local-dir:{args.out}')")
    if ctx.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return log


if __name__ == "__main__":
    main()
