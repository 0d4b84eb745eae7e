"""Small pieces of a fine-tuning loop: weight averaging, seeding, validation PSNR, and the
process-group set-up for ``torchrun``.

The loop itself stays in the user's script (``examples/finetune.py`` is one); these are the
parts that are easy to get subtly wrong.

Example:
    >>> ema = srzoo.train.EMA(model, decay=0.999)
    >>> for lr, hr in loader:
    ...     loss = srzoo.losses.L1()(model(lr), hr)
    ...     loss.backward(); opt.step(); opt.zero_grad()
    ...     ema.update(model)
    >>> srzoo.save_pretrained(ema.module, "out/")
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ._util import parameter_device_dtype, unwrap_compiled
from .errors import ArgumentError, ArgumentTypeError
from .metrics import psnr

__all__ = ["EMA", "DistributedContext", "init_distributed", "psnr_on", "seed_everything", "unwrap"]


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel``, ``DataParallel`` or compiled wrapper.

    Args:
        model: The module, wrapped or not.

    Returns:
        The module that holds the parameters under their own names.

    Example:
        >>> srzoo.save_pretrained(srzoo.train.unwrap(ddp_model), "out/")
    """
    module = unwrap_compiled(model)
    while isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        module = unwrap_compiled(module.module)
    return module


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all devices).

    Args:
        seed: The seed.

    Example:
        >>> srzoo.train.seed_everything(0)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class EMA:
    """An exponential moving average of a model's weights, as BasicSR's ``net_g_ema``.

    After each optimiser step, ``update(model)`` sets every parameter of the average to
    ``decay * average + (1 - decay) * parameter``; buffers are copied. The averaged network
    (``ema.module``, a frozen copy in eval mode, keeping srzoo's record of its architecture)
    usually scores a little higher than the last weights; evaluate and save it.

    Args:
        model: The network being trained (a DDP or compiled wrapper is unwrapped).
        decay: Weight of the past, in [0, 1); 0.999 as BasicSR and Real-ESRGAN.

    Raises:
        ArgumentError: ``decay`` outside [0, 1).

    Example:
        >>> ema = srzoo.train.EMA(model, decay=0.999)
        >>> ema.update(model)
        >>> srzoo.save_pretrained(ema.module, "out/")
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999) -> None:
        if not isinstance(model, nn.Module):
            raise ArgumentTypeError(f"EMA needs a torch.nn.Module, not {type(model).__name__}")
        if not 0.0 <= decay < 1.0:
            raise ArgumentError(f"decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.updates = 0
        self.module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights.

        Args:
            model: The network being trained (the one given to the constructor).
        """
        source = unwrap(model)
        params = dict(source.named_parameters())
        for name, avg in self.module.named_parameters():
            avg.lerp_(params[name].detach().to(avg.dtype), 1.0 - self.decay)
        buffers = dict(source.named_buffers())
        for name, buf in self.module.named_buffers():
            buf.copy_(buffers[name])
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights, decay and update count, for a checkpoint to resume from."""
        return {"module": self.module.state_dict(), "decay": self.decay, "updates": self.updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Args:
            state: The saved state.
        """
        self.module.load_state_dict(state["module"])
        self.decay = float(state["decay"])
        self.updates = int(state["updates"])


@torch.no_grad()
def psnr_on(
    model: nn.Module,
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    scale: int,
    y_channel: bool = True,
) -> float:
    """Mean PSNR of ``model`` on whole ``uint8`` (LR, HR) image pairs, by the papers' protocol.

    Each output is clamped and rounded to 8 bits, the HR image cropped to its size, and PSNR
    taken on BT.601 Y (or RGB) with ``scale`` pixels dropped at each border. The model runs in
    eval mode and is returned to its previous mode.

    Args:
        model: The network.
        pairs: ``(lr, hr)`` ``uint8`` tensors ``(3, h, w)`` and ``(3, H, W)``, such as
            :func:`srzoo.data.lr_from_hr` returns.
        scale: Upscaling factor (the border that is dropped).
        y_channel: Score on Y (the papers' convention) rather than RGB.

    Returns:
        The mean PSNR in dB.

    Raises:
        ArgumentError: ``pairs`` is empty.

    Example:
        >>> pairs = [srzoo.data.lr_from_hr(srzoo.data.read_rgb(f), 4) for f in files]
        >>> srzoo.train.psnr_on(model, pairs, scale=4)
    """
    was_training = model.training
    device, _ = parameter_device_dtype(model)
    model.eval()
    scores = []
    try:
        for lr, hr in pairs:
            x = lr[None].to(device).float() / 255.0
            sr = model(x).clamp(0, 1).mul(255).round().byte()[0]
            sr_np = sr.permute(1, 2, 0).cpu().numpy()
            hr_np = hr.permute(1, 2, 0).cpu().numpy()[: sr_np.shape[0], : sr_np.shape[1]]
            scores.append(psnr(sr_np, hr_np, crop_border=scale, y_channel=y_channel))
    finally:
        model.train(was_training)
    if not scores:
        raise ArgumentError("psnr_on needs at least one (lr, hr) pair")
    return float(np.mean(scores))


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a ``torchrun`` job (or alone).

    Args:
        rank: Global rank (0 alone).
        local_rank: Rank on this machine.
        world_size: Number of processes (1 alone).
        device: This process's device: ``cuda:<local_rank>`` with GPUs, else the CPU.
    """

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def init_distributed(*, device: str | None = None) -> DistributedContext:
    """Join the process group ``torchrun`` describes (``RANK``, ``WORLD_SIZE``, ...).

    Uses NCCL on GPUs and Gloo on CPUs. Without ``torchrun`` (no ``WORLD_SIZE`` above 1) it
    starts nothing and returns a single-process context.

    Args:
        device: ``"cpu"`` or ``"cuda"`` to force one; ``None`` picks CUDA when available.

    Returns:
        A :class:`DistributedContext`.

    Example:
        >>> ctx = srzoo.train.init_distributed()
        >>> model = torch.nn.parallel.DistributedDataParallel(model) if ctx.distributed else model
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda"):
        raise ArgumentError(f"device must be 'cpu' or 'cuda', got {device!r}")
    where = torch.device(f"cuda:{local}") if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(where)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo")
    return DistributedContext(rank=rank, local_rank=local, world_size=world, device=where)
