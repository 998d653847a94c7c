"""Loading CoTracker3 weights: official .pth files, TrackForge Lightning .ckpt files, or a download by variant."""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .model import CoTracker3Base, CoTracker3Offline, CoTracker3Online

HUB = "https://huggingface.co/facebook/cotracker3/resolve/main/"
# variant -> (model class, default window, official file name)
VARIANTS: dict[str, tuple[type[CoTracker3Base], int, str]] = {
    "offline": (CoTracker3Offline, 60, "scaled_offline.pth"),
    "online": (CoTracker3Online, 16, "scaled_online.pth"),
    "baseline_offline": (CoTracker3Offline, 60, "baseline_offline.pth"),
    "baseline_online": (CoTracker3Online, 16, "baseline_online.pth"),
}
CACHE_ENV = "TRACKFORGE_CACHE"


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not fit the model."""


def default_cache_dir() -> Path:
    """$TRACKFORGE_CACHE, else ~/.cache/trackforge."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "trackforge")


def official_url(variant: str) -> str:
    """Public URL of the official checkpoint of a variant."""
    return HUB + _variant(variant)[2]


def _variant(variant: str) -> tuple[type[CoTracker3Base], int, str]:
    if variant not in VARIANTS:
        raise ValueError(f"unknown tracker variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


def download(url: str, dest: Path, *, progress: bool = True) -> Path:
    """Fetch `url` (http(s):// or file://) to `dest` atomically (temporary file in the same folder + rename)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with urllib.request.urlopen(url) as resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            bar = _progress_bar(total, dest.name) if progress else None
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
            if bar is not None:
                bar.close()
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dest


def _progress_bar(total: int | None, name: str):
    try:
        from tqdm import tqdm  # optional; the download works without a bar
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}")


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the path
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc


def _find_arch(hparams: Any) -> dict[str, Any] | None:
    """An `arch` dict saved in Lightning hyper-parameters (top level or under model/cfg/config), if any."""
    if not isinstance(hparams, Mapping):
        return None
    if isinstance(hparams.get("arch"), Mapping):
        return dict(hparams["arch"])
    for key in ("model", "cfg", "config"):
        found = _find_arch(hparams.get(key))
        if found is not None:
            return found
    return None


def extract_state_dict(obj: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Model weights and (if saved) architecture from a loaded checkpoint object.

    Accepts a plain state dict, {"model": state_dict}, keys with "module." prefixes (DDP), and Lightning
    checkpoints ({"state_dict": {"model.<key>": ...}, "hyper_parameters": {... "arch": {...}}}).
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint is a {type(obj).__name__}, expected a dict of tensors")
    arch = None
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        arch = _find_arch(obj.get("hyper_parameters"))
        sd = dict(obj["state_dict"])
        if any(k.startswith("model.") for k in sd):  # drop the LightningModule's other members (e.g. teachers)
            sd = {k[len("model.") :]: v for k, v in sd.items() if k.startswith("model.")}
    elif "model" in obj and isinstance(obj["model"], Mapping):
        sd = dict(obj["model"])
    else:
        sd = dict(obj)
    sd = {re.sub(r"^(module\.)+", "", k): v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint entries are not tensors: {bad[:5]}")
    return sd, arch


def infer_arch(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Architecture keywords recoverable from state-dict shapes (num_heads cannot be; it keeps its default)."""
    try:
        hidden, token_dim = sd["updateformer.input_transform.weight"].shape
        corr_hidden, corr_in = sd["corr_mlp.fc1.weight"].shape
        corr_dim = sd["corr_mlp.fc2.weight"].shape[0]
        arch = dict(
            window_len=sd["time_emb"].shape[1],
            latent_dim=sd["fnet.conv3.weight"].shape[0],
            encoder_dims=[
                sd[f"fnet.{n}.weight"].shape[0] for n in ("conv1", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1")
            ],
            encoder_fuse_dim=sd["fnet.conv2.weight"].shape[0],
            hidden_size=hidden,
            num_virtual_tracks=sd["updateformer.virual_tracks"].shape[1],
            time_depth=len({k.split(".")[2] for k in sd if k.startswith("updateformer.time_blocks.")}),
            space_depth=len({k.split(".")[2] for k in sd if k.startswith("updateformer.space_virtual_blocks.")}),
            mlp_ratio=sd["updateformer.time_blocks.0.mlp.fc1.weight"].shape[0] / hidden,
            corr_hidden=corr_hidden,
            corr_dim=corr_dim,
            corr_radius=(round(corr_in ** 0.25) - 1) // 2,
            corr_levels=(token_dim - 2 - 84) // corr_dim,
        )
    except KeyError as exc:
        raise CheckpointError(f"cannot infer the architecture: key {exc} missing from the checkpoint") from exc
    return arch


def load_weights(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Strict load with one error naming every missing, unexpected and mis-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if shapes:
            parts.append(f"mis-shaped keys ({len(shapes)}): {'; '.join(shapes)}")
        raise CheckpointError("checkpoint does not match the model:\n  " + "\n  ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


def load_tracker(
    variant: str = "offline",
    checkpoint: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    url: str | None = None,
) -> CoTracker3Base:
    """Build the model of `variant` ("offline", "online", "baseline_offline", "baseline_online") and load weights.

    checkpoint: an official .pth, or a TrackForge Lightning .ckpt (its saved `arch` hyper-parameters, else the
    shapes of its weights, define the architecture); None downloads the official file (or `url`) once into
    `cache_dir` (default $TRACKFORGE_CACHE or ~/.cache/trackforge). Returns the model in eval mode on `device`.
    """
    cls, window, filename = _variant(variant)
    if checkpoint is None:
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        path = cache / filename
        if not path.exists():
            download(url or HUB + filename, path)
    else:
        path = Path(checkpoint)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
    sd, arch = extract_state_dict(_read(path))
    if arch is None and path.suffix == ".ckpt":
        arch = infer_arch(sd)  # our own training checkpoints may use a small architecture
    arch = dict(arch or {})
    arch.setdefault("window_len", window)
    try:
        model = cls(**arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot build a {cls.__name__} from the saved architecture {arch}: {exc}") from exc
    load_weights(model, sd)
    return model.to(device).eval()
