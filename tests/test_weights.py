"""Weight sources, downloads, the verified cache, offline mode, and save_pretrained folders.

Every download goes to a server on 127.0.0.1 started by the test (``tests/hub_server.py``), which
also stands in for the Hugging Face Hub; nothing reaches the internet.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import io
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import torch
from safetensors.torch import save_file

import srzoo
import srzoo.weights as sw
import srzoo.weights.urls
from srzoo.errors import WeightsError
from srzoo.registry import _REGISTRY, WeightSpec

from .hub_server import COMMIT, HubServer
from .util import FakeTerminal, randomize_

TINY: dict[str, Any] = {"n_resblocks": 1, "n_feats": 8, "res_scale": 1.0}
HEX64 = re.compile(r"[0-9a-f]{64}")


# --------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture()
def server() -> Iterator[HubServer]:
    srv = HubServer().start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private srzoo cache and Hub cache, no offline flags, no token."""
    home = tmp_path / "srzoo-home"
    monkeypatch.setenv("SRZOO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in (
        "HF_HUB_CACHE",
        "HF_ENDPOINT",
        "HF_TOKEN",
        "SRZOO_OFFLINE",
        "HF_HUB_OFFLINE",
        "SRZOO_DOWNLOAD_TIMEOUT",
    ):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture()
def register() -> Iterator[Any]:
    """Register tiny test-only EDSR variants; they are removed from the registry afterwards."""
    names: list[str] = []

    def add(name: str, *weights: WeightSpec) -> str:
        base = srzoo.model_info("edsr-baseline")
        srzoo.register_model(
            dataclasses.replace(base, name=name, defaults=TINY, weights=weights), overwrite=True
        )
        names.append(name)
        return name

    yield add
    for name in names:
        _REGISTRY.pop(name, None)


def _tiny(seed: int = 0) -> torch.nn.Module:
    return randomize_(srzoo.create("edsr-baseline", 2, **TINY), seed=seed)


def _pth_bytes(module: torch.nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.getvalue()


def _spec(source: str, data: bytes | None, **kw: Any) -> WeightSpec:
    if data is not None:
        kw.setdefault("sha256", hashlib.sha256(data).hexdigest())
        kw.setdefault("size", len(data))
    return WeightSpec(scale=2, source=source, license="test-only", **kw)


def _same_weights(model: torch.nn.Module, ref: torch.nn.Module) -> bool:
    a, b = model.state_dict(), ref.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _cache_files(home: Path) -> list[str]:
    """Files under the srzoo cache, lock files aside (they hold no data)."""
    if not home.exists():
        return []
    return sorted(
        str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and p.suffix != ".lock"
    )


# --------------------------------------------------------------------------------------------------
# Sources


def test_parse_source_kinds() -> None:
    hf = sw.parse_source("hf://someone/edsr/sub/edsr_x4.safetensors@v1.0")
    assert (hf.kind, hf.repo_id, hf.filename, hf.revision) == (
        "hf",
        "someone/edsr",
        "sub/edsr_x4.safetensors",
        "v1.0",
    )
    assert sw.parse_source("hf://a/b/c.pth").revision is None
    assert sw.parse_source("https://x.org/w.pt").kind == "url"
    assert sw.parse_source("package://tiny.safetensors").kind == "package"
    assert sw.parse_source("/tmp/w.pth").kind == "local"
    for bad in ("hf://only/repo", "hf://a/b/c.pth@", "package://../escape.pth"):
        with pytest.raises(WeightsError, match="malformed"):
            sw.parse_source(bad)


def test_local_source_is_verified(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"abc")
    good = hashlib.sha256(b"abc").hexdigest()
    assert sw.fetch(str(path), sha256=good, size=3) == path
    with pytest.raises(WeightsError, match="expected " + "0" * 64):
        sw.fetch(str(path), sha256="0" * 64)
    with pytest.raises(WeightsError, match="expected 4"):
        sw.fetch(str(path), size=4)


def test_missing_packaged_file_is_reported() -> None:
    with pytest.raises(WeightsError, match=r"packaged weights 'nope\.safetensors' are missing"):
        sw.fetch("package://nope.safetensors")


# --------------------------------------------------------------------------------------------------
# URL downloads and the cache


def test_first_load_downloads_and_later_loads_need_no_server(
    server: HubServer, register: Any, isolated: Path
) -> None:
    ref = _tiny()
    data = _pth_bytes(ref)
    name = register("t-dl", _spec(server.add_file("tiny_x2.pth", data), data))

    model = srzoo.load(name, 2, progress=False)
    assert _same_weights(model, ref)
    assert server.gets("tiny_x2.pth") == 1
    [cached] = [p for p in isolated.rglob("tiny_x2.pth")]
    assert cached.read_bytes() == data
    assert Path(str(cached) + ".sha256").read_text().strip() == hashlib.sha256(data).hexdigest()

    server.stop()
    again = srzoo.load(name, 2, progress=False)
    assert _same_weights(again, ref)
    assert srzoo.download(name, 2, progress=False) == cached


def test_pickle_is_converted_once_and_never_unpickled_again(
    server: HubServer, register: Any, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _tiny(1)
    data = _pth_bytes(ref)
    name = register("t-conv", _spec(server.add_file("conv_x2.pth", data), data))
    srzoo.load(name, 2, progress=False)
    converted = isolated / "converted" / f"{hashlib.sha256(data).hexdigest()}.safetensors"
    assert converted.is_file()

    def no_unpickling(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch.load was called on a cached checkpoint")

    monkeypatch.setattr(torch, "load", no_unpickling)
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)


def test_download_fills_the_cache_for_offline_use(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _tiny(2)
    data = _pth_bytes(ref)
    name = register("t-pre", _spec(server.add_file("pre_x2.pth", data), data))
    path = srzoo.download(name, 2, progress=False)
    assert path.read_bytes() == data
    server.stop()
    monkeypatch.setenv("SRZOO_OFFLINE", "1")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("unpickled while offline"))
    assert _same_weights(srzoo.load(name, 2), ref)


def test_wrong_hash_is_refused_and_nothing_is_cached(
    server: HubServer, register: Any, isolated: Path
) -> None:
    data = _pth_bytes(_tiny())
    url = server.add_file("bad_x2.pth", data)
    name = register("t-hash", _spec(url, data, sha256="ab" * 32))
    with pytest.raises(WeightsError, match="sha256 mismatch") as err:
        srzoo.load(name, 2, progress=False)
    assert url in str(err.value)
    assert _cache_files(isolated) == []


def test_file_name_hash_prefix_is_checked(server: HubServer, register: Any, isolated: Path) -> None:
    ref = _tiny()
    data = _pth_bytes(ref)
    digest = hashlib.sha256(data).hexdigest()
    good = server.add_file(f"tiny_x2-{digest[:8]}.pth", data)
    wrong = "0" if digest[0] != "0" else "1"
    bad = server.add_file(f"other_x2-{wrong * 8}.pth", data)
    ok = register("t-prefix-ok", _spec(good, None, sha256_note="prefix only"))
    ko = register("t-prefix-bad", _spec(bad, None, sha256_note="prefix only"))
    assert _same_weights(srzoo.load(ok, 2, progress=False), ref)
    with pytest.raises(WeightsError, match=f"starting with {wrong * 8}"):
        srzoo.load(ko, 2, progress=False)
    assert not any("other_x2" in f for f in _cache_files(isolated))


def test_cache_entry_for_other_bytes_is_replaced(server: HubServer, register: Any) -> None:
    # The registry names new bytes for the same URL (an upstream re-release): fetch them again.
    old, new = _tiny(1), _tiny(2)
    url = server.add_file("moving.pth", _pth_bytes(old))
    name = register("t-moving", _spec(url, _pth_bytes(old)))
    assert _same_weights(srzoo.load(name, 2, progress=False), old)
    server.add_file("moving.pth", _pth_bytes(new))
    register("t-moving", _spec(url, _pth_bytes(new)))
    assert _same_weights(srzoo.load(name, 2, progress=False), new)
    assert server.gets("moving.pth") == 2


def test_unhashed_download_records_its_digest(server: HubServer, register: Any) -> None:
    ref = _tiny()
    data = _pth_bytes(ref)
    name = register("t-tofu", _spec(server.add_file("plain.pth", data), None, sha256_note="none"))
    path = srzoo.download(name, 2, progress=False)
    sidecar = Path(str(path) + ".sha256")
    assert sidecar.read_text().strip() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("truncate", "truncated"),
        ("404", "HTTP 404"),
        ("500", "HTTP 500"),
        ("html", "HTML page"),
        ("html-as-binary", "HTML page"),
    ],
)
def test_server_failures_raise_and_leave_nothing(
    server: HubServer, register: Any, isolated: Path, mode: str, message: str
) -> None:
    data = _pth_bytes(_tiny())
    url = server.add_file(f"{mode}.pth", data)
    server.fail(f"{mode}.pth", mode)
    # Without a registered size the transfer itself must reveal the problem.
    name = register(f"t-{mode}", _spec(url, data, size=None))
    with pytest.raises(WeightsError, match=message) as err:
        srzoo.load(name, 2, progress=False)
    assert url in str(err.value)
    assert _cache_files(isolated) == []
    # Once the server behaves, the same call succeeds: no broken entry blocks it.
    server.fail(f"{mode}.pth", None)
    srzoo.load(name, 2, progress=False)


def test_size_mismatch_is_caught_before_downloading(
    server: HubServer, register: Any, isolated: Path
) -> None:
    data = _pth_bytes(_tiny())
    name = register("t-size", _spec(server.add_file("size.pth", data), data, size=len(data) + 1))
    with pytest.raises(WeightsError, match=f"registered file is {len(data) + 1} bytes"):
        srzoo.load(name, 2, progress=False)
    assert _cache_files(isolated) == []


def test_timeout(
    server: HubServer, register: Any, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _pth_bytes(_tiny())
    name = register("t-slow", _spec(server.add_file("slow.pth", data), data))
    server.fail("slow.pth", "slow")
    server.slow_seconds = 2.0
    monkeypatch.setenv("SRZOO_DOWNLOAD_TIMEOUT", "0.3")
    with pytest.raises(WeightsError, match="timed out"):
        srzoo.load(name, 2, progress=False)
    assert _cache_files(isolated) == []


def test_full_disk_leaves_nothing(
    server: HubServer, register: Any, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _pth_bytes(_tiny())
    name = register("t-full", _spec(server.add_file("full.pth", data), data))
    real_open = srzoo.weights.urls._open_temp

    class FullDisk(io.RawIOBase):
        def __init__(self, f: IO[bytes]) -> None:
            self.f = f

        def write(self, b: Any) -> int:
            # Part of the data reaches the disk before it fills up.
            self.f.write(bytes(b)[:500])
            raise OSError(errno.ENOSPC, "No space left on device")

        def fileno(self) -> int:
            return self.f.fileno()

        def close(self) -> None:
            self.f.close()
            super().close()

    def full_disk(tmp: Path) -> IO[bytes]:
        return FullDisk(real_open(tmp))  # type: ignore[return-value]

    monkeypatch.setattr(srzoo.weights.urls, "_open_temp", full_disk)
    with pytest.raises(WeightsError, match="no space left") as err:
        srzoo.load(name, 2, progress=False)
    assert "SRZOO_HOME" in str(err.value)
    assert _cache_files(isolated) == []


def test_failed_safetensors_save_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import safetensors.torch

    target = tmp_path / "model.safetensors"
    sw.save_safetensors_atomic({"w": torch.zeros(2)}, target)
    before = target.read_bytes()

    def full_disk(tensors: Any, filename: str, metadata: Any = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    with pytest.raises(WeightsError, match="no space left"):
        sw.save_safetensors_atomic({"w": torch.ones(2)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_unwritable_folder_is_a_weights_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import srzoo._util

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(srzoo._util.tempfile, "mkstemp", denied)
    with pytest.raises(WeightsError, match=r"cannot write model\.safetensors"):
        sw.save_safetensors_atomic({"w": torch.zeros(2)}, tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["SRZOO_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_uses_the_cache_and_names_the_fill_command(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    ref = _tiny()
    data = _pth_bytes(ref)
    cached = register("t-off-hit", _spec(server.add_file("hit.pth", data), data))
    missing = register("t-off-miss", _spec(server.add_file("miss.pth", data), data))
    srzoo.load(cached, 2, progress=False)
    monkeypatch.setenv(flag, "1")
    assert _same_weights(srzoo.load(cached, 2), ref)
    with pytest.raises(WeightsError) as err:
        srzoo.load(missing, 2)
    message = str(err.value)
    assert "miss.pth" in message
    assert "srzoo download t-off-miss --scale 2" in message
    assert server.gets("miss.pth") == 0


def test_progress_bar_shows_only_when_asked(
    server: HubServer, register: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    data = _pth_bytes(_tiny())
    quiet = register("t-quiet", _spec(server.add_file("quiet.pth", data), data))
    loud = register("t-loud", _spec(server.add_file("loud.pth", data), data))
    capfd.readouterr()
    srzoo.download(quiet, 2, progress=False)
    assert "quiet.pth" not in capfd.readouterr().err
    srzoo.download(loud, 2, progress=True)
    assert "loud.pth" in capfd.readouterr().err
    # Not a terminal (pytest captures stderr) and no preference: silent.
    server.add_file("auto.pth", data)
    auto = register("t-auto", _spec(server.url("auto.pth"), data))
    srzoo.download(auto, 2)
    assert "auto.pth" not in capfd.readouterr().err


_CHILD = textwrap.dedent(
    """
    import dataclasses, hashlib, sys
    import srzoo
    from srzoo.registry import WeightSpec
    url, sha, size, name = sys.argv[1:5]
    base = srzoo.model_info("edsr-baseline")
    weights = (WeightSpec(scale=2, source=url, sha256=sha, size=int(size), license="test"),)
    srzoo.register_model(dataclasses.replace(base, name=name, weights=weights))
    model = srzoo.load(name, 2, progress=False)
    weight = model.head[0].weight.detach().contiguous()
    print(hashlib.sha256(weight.numpy().tobytes()).hexdigest())
    """
)


def test_two_processes_download_once(server: HubServer, isolated: Path, tmp_path: Path) -> None:
    # A full-size EDSR-baseline (6 MB) served slowly, so that both processes ask for it while the
    # first download is still in flight.
    ref = randomize_(srzoo.create("edsr-baseline", 2), seed=7)
    data = _pth_bytes(ref)
    url = server.add_file("shared.pth", data)
    server.chunk_delay = 0.005
    sha = hashlib.sha256(data).hexdigest()
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    args = [sys.executable, str(script), url, sha, str(len(data)), "t-race"]
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    weight = ref.get_parameter("head.0.weight").detach().contiguous()
    want = hashlib.sha256(weight.numpy().tobytes()).hexdigest()
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == want
    assert server.gets("shared.pth") == 1
    [cached] = list(isolated.rglob("shared.pth"))
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == sha
    assert not list(isolated.rglob("*.part"))
    assert len(list(isolated.rglob("converted/*.safetensors"))) == 1


def test_pickle_that_runs_code_never_runs(
    server: HubServer, register: Any, isolated: Path, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.mkdir, (str(marker),))

    buf = io.BytesIO()
    torch.save({"head.0.weight": torch.zeros(1), "x": Evil()}, buf)
    data = buf.getvalue()
    name = register("t-evil", _spec(server.add_file("evil.pth", data), data))
    with pytest.raises(WeightsError, match="never unpickles") as caught:
        srzoo.load(name, 2, progress=False)
    assert not marker.exists()
    # No message points at the unsafe way round.
    assert "weights_only=False" not in str(caught.value)
    assert not list(isolated.rglob("converted/*.safetensors"))


# --------------------------------------------------------------------------------------------------
# The Hub


def test_hub_source_downloads_verifies_and_caches(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    ref = _tiny(3)
    data = _pth_bytes(ref)
    server.add_hub_file("someone/tiny", "weights/tiny_x2.pth", data)
    sha = hashlib.sha256(data).hexdigest()
    name = register("t-hub", _spec("hf://someone/tiny/weights/tiny_x2.pth", None, sha256=sha))
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)
    assert server.gets("someone/tiny/weights/tiny_x2.pth") == 1
    blobs = list((tmp_path / "hf-home" / "hub").rglob("blobs/*"))
    assert [b.name for b in blobs] == [sha]

    server.stop()  # the Hub is unreachable: the cached revision still serves
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _same_weights(srzoo.load(name, 2), ref)


def test_hub_source_pinned_to_a_commit(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    ref = _tiny(4)
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    path = Path(os.environ["SRZOO_HOME"]).parent / "tiny.safetensors"
    save_file(state, path)
    server.add_hub_file("someone/pinned", "tiny.safetensors", path.read_bytes())
    name = register("t-pin", _spec(f"hf://someone/pinned/tiny.safetensors@{COMMIT}", None))
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)
    server.stop()
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)


def test_hub_download_corrupted_in_transit_is_removed(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    data = _pth_bytes(_tiny())
    server.add_hub_file("someone/bad", "w.pth", data)
    server.fail("someone/bad/w.pth", "corrupt")
    name = register("t-hub-bad", _spec("hf://someone/bad/w.pth", None, sha256_note="etag"))
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        srzoo.load(name, 2, progress=False)
    assert not [p for p in (tmp_path / "hf-home").rglob("blobs/*") if p.is_file()]


def test_hub_progress_bar_follows_the_progress_argument(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    data = _pth_bytes(_tiny())
    names = {}
    for word in ("quiet", "auto", "loud"):
        server.add_hub_file(f"someone/{word}", f"{word}.pth", data)
        names[word] = register(f"t-hub-{word}", _spec(f"hf://someone/{word}/{word}.pth", data))
    # On a terminal a bar is drawn unless the caller said progress=False.
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    srzoo.download(names["quiet"], 2, progress=False)
    srzoo.download(names["auto"], 2)
    assert "quiet.pth" not in terminal.getvalue()
    assert "auto.pth" in terminal.getvalue()
    # Off a terminal only progress=True draws one.
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    srzoo.download(names["loud"], 2, progress=True)
    assert "loud.pth" in plain.getvalue()


def test_hub_missing_file_and_offline_miss(
    server: HubServer, register: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    name = register("t-hub-404", _spec("hf://someone/empty/w.pth", None, sha256_note="none"))
    with pytest.raises(WeightsError, match=r"has no file 'w\.pth'"):
        srzoo.load(name, 2, progress=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="srzoo download t-hub-404 --scale 2"):
        srzoo.load(name, 2)


# --------------------------------------------------------------------------------------------------
# save_pretrained, local-dir: and hf-hub:


def test_built_models_remember_their_config() -> None:
    model = srzoo.create("edsr-baseline", 2, n_resblocks=1, n_feats=8)
    assert srzoo.model_config(model) == srzoo.ModelConfig(
        "edsr-baseline", 2, {"n_resblocks": 1, "n_feats": 8, "res_scale": 1.0}
    )
    # A plain attribute: the state dict is exactly the module's parameters and buffers.
    assert "srzoo_config" not in "".join(model.state_dict())
    loaded = srzoo.load("rcan", 2, weights=None, n_resgroups=1, n_resblocks=1)
    config = srzoo.model_config(loaded)
    assert config is not None and config.model_args["n_resgroups"] == 1
    # A compiled module reports the config of the module inside it.
    assert srzoo.model_config(torch.compile(loaded)) == config


def test_save_pretrained_round_trips_through_a_folder_and_the_hub(
    server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = randomize_(srzoo.create("rcan", 3, n_resgroups=1, n_resblocks=2, n_feats=16), seed=5)
    model.eval()
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        want = model(x)
    folder = srzoo.save_pretrained(model, tmp_path / "my-rcan")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    import json

    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "rcan" and config["scale"] == 3
    assert config["model_args"]["n_resgroups"] == 1
    assert config["srzoo_version"] == srzoo.__version__

    # Same weights in the same memory layout as the original: bit-identical outputs. (load may
    # store convolution weights channels-last, which changes the summation order.)
    local = srzoo.load(f"local-dir:{folder}").to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        assert torch.equal(local(x), want)
    config = srzoo.model_config(local)
    assert config is not None and config.model_args["n_resblocks"] == 2

    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    for f in folder.iterdir():
        server.add_hub_file("someone/my-rcan", f.name, f.read_bytes())
    for ref in ("hf-hub:someone/my-rcan", f"hf-hub:someone/my-rcan@{COMMIT}"):
        remote = srzoo.load(ref, progress=False).to(memory_format=torch.contiguous_format)
        with torch.no_grad():
            assert torch.equal(remote(x), want)
    with pytest.raises(WeightsError, match="x3 model, not x2"):
        srzoo.load(f"local-dir:{folder}", scale=2)


def test_save_pretrained_needs_a_name_for_foreign_modules(tmp_path: Path) -> None:
    from srzoo.archs.edsr import EDSR

    plain = EDSR(scale=2, n_resblocks=16, n_feats=64, res_scale=1.0)
    with pytest.raises(ValueError, match="name="):
        srzoo.save_pretrained(plain, tmp_path / "a")
    folder = srzoo.save_pretrained(plain, tmp_path / "b", name="edsr-baseline")
    assert _same_weights(srzoo.load(f"local-dir:{folder}"), plain)
    odd = EDSR(scale=2, n_resblocks=2, n_feats=8)
    with pytest.raises(ValueError, match="does not match 'edsr-baseline'"):
        srzoo.save_pretrained(odd, tmp_path / "c", name="edsr-baseline")


def test_local_dir_without_files_is_explained(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"config\.json and model\.safetensors"):
        srzoo.load(f"local-dir:{tmp_path}")


# --------------------------------------------------------------------------------------------------
# The registry


def _registered_weights() -> list[tuple[str, WeightSpec]]:
    return [(n, w) for n in srzoo.list_models() for w in srzoo.model_info(n).weights]


def test_registry_weight_entries_are_complete() -> None:
    entries = _registered_weights()
    assert {n for n, _ in entries} >= {"edsr", "edsr-baseline", "rcan", "msrresnet"}
    for name, w in entries:
        where = f"{name} x{w.scale}:{w.tag}"
        src = sw.parse_source(w.source)
        assert src.kind in ("hf", "package") or w.source.startswith("https://"), where
        if w.sha256 is not None:
            assert HEX64.fullmatch(w.sha256), where
        else:
            assert w.sha256_note.strip(), f"{where}: no sha256 and no note saying why"
        if src.kind == "url" and w.sha256 is not None:
            assert w.size is not None or "size" in w.sha256_note, f"{where}: size missing"
        prefix = srzoo.weights.urls.name_hash_prefix(Path(w.source).name)
        if prefix and w.sha256:
            assert w.sha256.startswith(prefix), f"{where}: hash contradicts the file name"
        assert w.license.strip() and w.license != "unknown", (
            f"{where}: licence of the weights not filled in (write e.g. 'none published' when "
            "the authors publish none)"
        )
        for m in w.metrics:
            assert m.scale == w.scale and m.source, where
    tags = [(n, w.scale, w.tag) for n, w in entries]
    assert len(tags) == len(set(tags)), "two weights share a name, scale and tag"


@pytest.mark.parametrize(
    "name", [n for n in srzoo.list_models(pretrained=True) if srzoo.model_info(n).converter]
)
def test_converters_leave_srzoos_own_layout_alone(name: str) -> None:
    """A file already in srzoo's layout (e.g. from save_pretrained) passes the converter as is."""
    spec = srzoo.model_info(name)
    assert spec.converter is not None
    for scale in sorted({w.scale for w in spec.weights}):
        with torch.device("meta"):
            module = spec.build(scale)
        expected = {k: v.shape for k, v in module.state_dict().items()}
        state = spec.converter(dict(module.state_dict()), module)
        assert {k: v.shape for k, v in state.items()} == expected, f"{name} x{scale}"


def _to_basicsr_edsr(state: dict[str, torch.Tensor], n_blocks: int) -> dict[str, torch.Tensor]:
    rules = [
        (r"^head\.0\.", "conv_first."),
        (rf"^body\.{n_blocks}\.", "conv_after_body."),
        (r"^body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
        (r"^body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
        (r"^tail\.0\.", "upsample."),
        (r"^tail\.1\.", "conv_last."),
    ]
    out = {}
    for key, value in state.items():
        if key.startswith(("sub_mean.", "add_mean.")):
            continue  # BasicSR keeps the mean shift as a constant
        for pattern, repl in rules:
            if re.match(pattern, key):
                key = re.sub(pattern, repl, key)
                break
        out[key] = value
    return out


def _to_kair_msrresnet(state: dict[str, torch.Tensor], _: int) -> dict[str, torch.Tensor]:
    return {
        re.sub(r"^body\.", "recon_trunk.", re.sub(r"^conv_hr\.", "HRconv.", k)): v
        for k, v in state.items()
    }


@pytest.mark.parametrize(
    ("name", "host", "to_layout", "n_blocks"),
    [
        # BasicSR's conversions of the official EDSR weights (mirrored by ccrestoration).
        ("edsr-baseline", "TensoRaws/ccrestoration", _to_basicsr_edsr, 16),
        ("msrresnet", "cszn/KAIR", _to_kair_msrresnet, 16),
    ],
)
def test_registered_upstream_layouts_convert(
    name: str, host: str, to_layout: Any, n_blocks: int
) -> None:
    spec = srzoo.model_info(name)
    scales = sorted({w.scale for w in spec.weights if host in w.source})
    assert scales, f"no weights from {host} registered for {name}"
    assert spec.converter is not None
    for scale in scales:
        with torch.device("meta"):
            module = spec.build(scale)
        expected = {k: v.shape for k, v in module.state_dict().items()}
        upstream = to_layout(dict(module.state_dict()), n_blocks)
        assert upstream.keys() != expected.keys()
        converted = spec.converter(upstream, module)
        assert {k: v.shape for k, v in converted.items()} == expected, f"{name} x{scale}"


def test_download_without_registered_weights_says_so() -> None:
    with pytest.raises(WeightsError, match="no pretrained weights are registered for 'srresnet'"):
        srzoo.download("srresnet", 4)
    with pytest.raises(WeightsError, match=r"registered: .*x4:default"):
        srzoo.download("edsr", 4, tag="nope")


def test_core_family_weights_are_documented() -> None:
    for name in ("edsr", "edsr-baseline", "rcan", "msrresnet"):
        spec = srzoo.model_info(name)
        assert spec.weights_for(spec.scale) is not None, f"{name}: no default weights"
        for w in spec.weights:
            assert w.train_data and w.input_range, f"{name} x{w.scale}:{w.tag}"
    for name, scales in (("edsr", (2, 3, 4)), ("rcan", (2, 3, 4))):
        for scale in scales:
            ws = srzoo.model_info(name).weights_for(scale)
            assert ws is not None
            assert {m.dataset for m in ws.metrics} == {"Set5", "Set14"}, f"{name} x{scale}"
            assert all(m.metric == "psnr_y" and "arXiv" in m.source for m in ws.metrics)


def test_meta_build_leaves_initialisation_alone(tmp_path: Path) -> None:
    before = {n: getattr(torch.nn.init, n) for n in ("kaiming_uniform_", "uniform_", "normal_")}
    path = tmp_path / "w.safetensors"
    ref = _tiny()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    model = srzoo.load("edsr-baseline", 2, weights=path, **TINY)
    assert _same_weights(model.to(memory_format=torch.contiguous_format), ref)
    assert {n: getattr(torch.nn.init, n) for n in before} == before
    # Randomly initialised modules are still random.
    a, b = srzoo.create("edsr-baseline", 2, **TINY), srzoo.create("edsr-baseline", 2, **TINY)
    assert not torch.equal(a.get_parameter("head.0.weight"), b.get_parameter("head.0.weight"))


# --------------------------------------------------------------------------------------------------
# A damaged cache is never used


def _flip_byte(path: Path, offset_from_end: int = 100) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_converted_copy_with_flipped_bytes_is_rebuilt(
    server: HubServer, register: Any, isolated: Path
) -> None:
    ref = _tiny(5)
    data = _pth_bytes(ref)
    name = register("t-flip", _spec(server.add_file("flip_x2.pth", data), data))
    srzoo.load(name, 2, progress=False)
    converted = isolated / "converted" / f"{hashlib.sha256(data).hexdigest()}.safetensors"
    recorded = Path(str(converted) + ".sha256").read_text().strip()
    assert recorded == hashlib.sha256(converted.read_bytes()).hexdigest()
    # A flipped bit inside a tensor keeps the file readable: only the digest can tell.
    _flip_byte(converted)
    server.stop()  # rebuilt from the verified original in the cache, not downloaded again
    model = srzoo.load(name, 2, progress=False)
    assert _same_weights(model, ref)
    # A new copy with its own digest (safetensors headers are not byte-for-byte reproducible).
    rebuilt = Path(str(converted) + ".sha256").read_text().strip()
    assert rebuilt == hashlib.sha256(converted.read_bytes()).hexdigest()


def test_converted_copy_without_a_recorded_digest_is_rebuilt(
    server: HubServer, register: Any, isolated: Path
) -> None:
    ref = _tiny(6)
    data = _pth_bytes(ref)
    name = register("t-nodigest", _spec(server.add_file("nd_x2.pth", data), data))
    srzoo.load(name, 2, progress=False)
    converted = isolated / "converted" / f"{hashlib.sha256(data).hexdigest()}.safetensors"
    Path(str(converted) + ".sha256").unlink()
    _flip_byte(converted)
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)
    assert Path(str(converted) + ".sha256").is_file()


def test_damaged_download_in_the_cache_is_fetched_again(
    server: HubServer, register: Any, isolated: Path
) -> None:
    ref = _tiny(7)
    path = isolated.parent / "w.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    data = path.read_bytes()
    name = register("t-dmg", _spec(server.add_file("dmg_x2.safetensors", data), data))
    srzoo.load(name, 2, progress=False)
    [cached] = list(isolated.rglob("dmg_x2.safetensors"))
    _flip_byte(cached)
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)
    assert server.gets("dmg_x2.safetensors") == 2
    assert cached.read_bytes() == data


def test_damaged_original_under_a_damaged_conversion_is_fetched_again(
    server: HubServer, register: Any, isolated: Path
) -> None:
    ref = _tiny(8)
    data = _pth_bytes(ref)
    name = register("t-dmg2", _spec(server.add_file("dmg2_x2.pth", data), data))
    srzoo.load(name, 2, progress=False)
    converted = isolated / "converted" / f"{hashlib.sha256(data).hexdigest()}.safetensors"
    [original] = list(isolated.rglob("dmg2_x2.pth"))
    _flip_byte(converted)
    _flip_byte(original)
    assert _same_weights(srzoo.load(name, 2, progress=False), ref)
    assert server.gets("dmg2_x2.pth") == 2


def test_damaged_packaged_file_is_refused_not_deleted(register: Any, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in _tiny().state_dict().items()}, path)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    _flip_byte(path)
    name = register("t-local-dmg", _spec(str(path), None, sha256=good))
    with pytest.raises(WeightsError, match="not the registered file"):
        srzoo.load(name, 2)
    assert path.is_file()


# --------------------------------------------------------------------------------------------------
# The format comes from the bytes, not the name


@pytest.mark.parametrize("name", ["model.pth", "model", "model.bin", "weights.ckpt"])
def test_safetensors_under_any_name_loads(tmp_path: Path, name: str) -> None:
    ref = _tiny()
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    assert sw.checkpoint_format(path) == "safetensors"
    model = srzoo.load("edsr-baseline", 2, weights=path, **TINY)
    assert _same_weights(model.to(memory_format=torch.contiguous_format), ref)


def test_pickles_under_any_name_load(tmp_path: Path) -> None:
    ref = _tiny()
    zipped = tmp_path / "zipped.safetensors"  # a zip checkpoint with a misleading name
    zipped.write_bytes(_pth_bytes(ref))
    legacy = tmp_path / "legacy"
    torch.save(ref.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert sw.checkpoint_format(zipped) == "zip"
    assert sw.checkpoint_format(legacy) == "pickle"
    for path in (zipped, legacy):
        model = srzoo.load("edsr-baseline", 2, weights=str(path), **TINY)
        assert _same_weights(model.to(memory_format=torch.contiguous_format), ref)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", "empty"),
        (b"<!DOCTYPE html><html>quota exceeded</html>", "HTML"),
        (b'{"error": "not found"}', "text"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "neither a safetensors file nor a PyTorch"),
        (os.urandom(256), "not a checkpoint"),
    ],
)
def test_a_file_that_is_no_checkpoint_says_so(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=says) as caught:
        srzoo.load("edsr-baseline", 2, weights=path, **TINY)
    assert "weights_only=False" not in str(caught.value)


def test_no_message_ever_suggests_unsafe_loading() -> None:
    root = Path(srzoo.__file__).resolve().parent
    for source in root.rglob("*.py"):
        assert "weights_only=False" not in source.read_text(), source


def test_integer_or_complex_weights_are_refused(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in _tiny().state_dict().items()}
    for bad in (torch.int64, torch.complex64):
        broken = dict(state)
        broken["head.0.weight"] = state["head.0.weight"].to(bad)
        path = tmp_path / f"{bad}.safetensors".replace("torch.", "")
        save_file(broken, path)
        with pytest.raises(WeightsError, match="floating point"):
            srzoo.load("edsr-baseline", 2, weights=path, **TINY)


def test_registered_checkpoint_of_another_model_or_scale_is_refused(
    register: Any, tmp_path: Path
) -> None:
    path = tmp_path / "mine_x2.pth"
    path.write_bytes(_pth_bytes(_tiny()))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    register("t-owner", _spec("https://example.invalid/mine_x2.pth", None, sha256=digest))
    # Its own model and scale: fine.
    srzoo.load("t-owner", 2, weights=path)
    # Same tensor shapes, another model: refused, naming the right one.
    with pytest.raises(WeightsError, match=r"'t-owner' at x2.*srzoo.load\('t-owner', scale=2"):
        srzoo.load("edsr-baseline", 2, weights=path, **TINY)


def test_a_safetensors_header_that_looks_like_a_pickle_is_safetensors(tmp_path: Path) -> None:
    # A 640-byte header's length starts with 0x80 0x02, the opening of a pickle.
    path = tmp_path / "w.safetensors"
    for pad in range(800):
        save_file({"x": torch.zeros(1)}, path, metadata={"pad": "p" * pad})
        data = path.read_bytes()
        if data[:2] == b"\x80\x02":
            break
    else:
        pytest.skip("no padding gave a header length starting with 0x80 0x02")
    assert sw.checkpoint_format(path) == "safetensors"
    assert torch.equal(sw.read_state_dict(path)["x"], torch.zeros(1))
