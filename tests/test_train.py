"""Fine-tuning pieces: the weight average, validation PSNR by the papers' protocol, a few steps
of the library's pieces lowering the loss, and the single-process distributed context."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import srzoo
from srzoo.data import PairedImageDataset, StepBatchSampler, lr_from_hr, read_rgb
from srzoo.losses import L1
from srzoo.train import EMA, init_distributed, psnr_on, seed_everything, unwrap

from .test_data import write_images
from .util import TINY as TINY_ALL

TINY = {"n_resblocks": 1, "n_feats": 8}


def test_ema_is_the_exponential_average_of_the_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = srzoo.create("edsr-baseline", 2, **TINY)
    ema = EMA(model, decay=0.9)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    before = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    ema.update(model)
    now = model.state_dict()
    for k, v in ema.module.state_dict().items():
        expected = before[k] * 0.9 + now[k] * 0.1 if k in dict(model.named_parameters()) else now[k]
        assert torch.allclose(v, expected, atol=1e-6), k
    assert ema.updates == 1
    # The average keeps srzoo's record of the architecture: it saves and loads as the model.
    srzoo.save_pretrained(ema.module, tmp_path / "ema")
    loaded = srzoo.load(f"local-dir:{tmp_path / 'ema'}", channels_last=False)
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(loaded(x), ema.module(x), atol=1e-6)
    # Resuming: the state round-trips.
    other = EMA(srzoo.create("edsr-baseline", 2, **TINY), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.decay == 0.9 and other.updates == 1
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            other.module.state_dict().values(), ema.module.state_dict().values(), strict=True
        )
    )
    with pytest.raises(srzoo.ArgumentError, match="decay"):
        EMA(model, decay=1.0)


def test_psnr_on_agrees_with_evaluate(tmp_path: Path) -> None:
    paths = write_images(tmp_path, n=2, size=(40, 36))
    torch.manual_seed(0)
    model = srzoo.create("edsr-baseline", 2, **TINY)
    pairs = [lr_from_hr(read_rgb(p), 2) for p in paths]
    score = psnr_on(model, pairs, scale=2)
    assert model.training  # returned to its mode
    expected = srzoo.evaluate(model, tmp_path, scale=2, progress=False).psnr
    assert score == pytest.approx(expected, abs=1e-9)
    with pytest.raises(srzoo.ArgumentError):
        psnr_on(model, [], scale=2)


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    write_images(tmp_path, n=4, size=(48, 48))
    seed_everything(0)
    model = srzoo.create("edsr-baseline", 2, **TINY)
    ds = PairedImageDataset(tmp_path, scale=2, patch_size=12, seed=0)
    loader = torch.utils.data.DataLoader(
        ds, batch_sampler=StepBatchSampler(len(ds), batch_size=4, steps=30)
    )
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    criterion = L1()
    losses = []
    for lr, hr in loader:
        loss = criterion(model(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5])


def test_single_process_context_and_unwrap() -> None:
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.device == torch.device("cpu")
    model = srzoo.create("edsr-baseline", 2, **TINY)
    assert unwrap(torch.nn.DataParallel(model)) is model
    with pytest.raises(srzoo.ArgumentError):
        init_distributed(device="tpu")


@pytest.mark.slow
def test_every_registered_model_trains_under_ddp(tmp_path: Path) -> None:
    """Nothing in srzoo's models breaks DistributedDataParallel: no parameter left without a
    gradient (DDP fails on the step after), no buffer it cannot broadcast."""
    from torch.nn.parallel import DistributedDataParallel

    dist = torch.distributed
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        registered = set(srzoo.list_models())
        for name, overrides in TINY_ALL.items():
            if name not in registered:  # a family whose tiny configuration is listed early
                continue
            spec = srzoo.model_info(name)
            torch.manual_seed(0)
            model = DistributedDataParallel(srzoo.create(name, spec.scales[0], **overrides))
            x = torch.rand(2, unwrap(model).in_channels, 12, 12)  # type: ignore[arg-type]
            for _ in range(2):  # an unused parameter fails on the second step
                model(x).mean().backward()
            assert all(p.grad is not None for p in model.parameters() if p.requires_grad), name
    finally:
        dist.destroy_process_group()
