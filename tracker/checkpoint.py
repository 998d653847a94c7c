"""The one reader and writer of tracker checkpoints: official .pth files (downloaded once into a cache), TrackForge
Lightning .ckpt files.

Every file is read with `torch.load(..., weights_only=True)`: PyTorch's restricted unpickler builds tensors, plain
containers (dict, list, tuple, set, OrderedDict), str/bytes/numbers/bool/None and torch dtypes/devices/sizes only, and
refuses every other class before anything is called, so a checkpoint cannot run code. TrackForge's Lightning
checkpoints need nothing more: their hyper-parameters are a plain resolved config dict, and Lightning's loop,
callback, optimizer and scheduler states are plain dicts of numbers, strings and tensors (a test checks real
checkpoints of online and offline runs). No class is added to torch's allow-list.

What TrackForge training writes (`tracker_metadata`, stored under checkpoint["trackforge"] next to Lightning's keys):
    {"format_version": 1, "variant": "online" | "offline", "arch": <every constructor keyword, window_len included>,
     "input_resolution": [H, W]}   # the training crop: the resolution evaluation feeds the model
Older TrackForge checkpoints without it are read from their stored config (hyper_parameters["config"]).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tracker.common.download import download

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
METADATA_KEY = "trackforge"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not fit the model (one-line message naming the file). `reason`: the
    message without the file name, for callers that name the file themselves."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message


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


def default_window_len(variant: str) -> int:
    """The official window length of a variant (online 16, offline 60)."""
    return _variant(variant)[1]


def kind_of(variant: str) -> str:
    """"online" or "offline": the kind of the model class a variant name stands for."""
    return _variant(variant)[0].kind


def file_digest(path: str | os.PathLike, length: int = 16) -> str:
    """SHA-256 of a file's bytes (hex, first `length` characters): identifies a checkpoint in caches."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()[:length]


# --------------------------------------------------------------------------------------------------------- reading
def load_file(path: str | os.PathLike) -> Any:
    """torch.load(path, weights_only=True) on the CPU; any failure -> CheckpointError with one line.

    A file that names a class outside torch's allow-list (a pickled object, possibly a code payload) is refused
    before the class is looked up or called; the message names it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a plain pickle's protocol warning precedes the one-line error below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises UnpicklingError, RuntimeError, EOFError, ... here
        text = str(exc)
        refused = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        if refused:
            reason = (f"it refers to {', '.join(refused)}, which is not tensor data (checkpoints are read with "
                      "torch.load(weights_only=True); nothing was run)")
            raise CheckpointError(f"refused to load checkpoint {path}: {reason}", reason) from None
        # torch's weights-only reader buries the reason ("Unsupported operand 110") in a paragraph of advice.
        detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text
        detail = next((line.strip() for line in detail.splitlines() if line.strip()), type(exc).__name__)
        reason = f"not a PyTorch checkpoint ({detail[:200]})"
        raise CheckpointError(f"cannot read checkpoint {path}: {reason}", reason) from None


@dataclass
class TrackerCheckpoint:
    """What a checkpoint file says about its model.

    state_dict: the tracker's weights (no "model."/"module." prefixes). arch: constructor keywords (window_len
    included) when the file records them, else None. kind: "online"/"offline" when recorded. input_resolution:
    (H, W) the model was trained at, when recorded. origin: "trackforge" (metadata), "trackforge-config" (older
    TrackForge checkpoint: its stored config), "lightning" (some Lightning checkpoint), "plain" (a state dict).
    """

    path: Path
    state_dict: dict[str, torch.Tensor]
    arch: dict[str, Any] | None
    kind: str | None
    input_resolution: tuple[int, int] | None
    origin: str


def tracker_metadata(model: CoTracker3Base, input_resolution) -> dict[str, Any]:
    """The record TrackForge training stores under checkpoint["trackforge"] (see module docstring)."""
    return {
        "format_version": FORMAT_VERSION,
        "variant": model.kind,
        "arch": dict(model.arch),
        "input_resolution": [int(v) for v in input_resolution],
    }


def _arch_from_config(config: Mapping) -> tuple[dict[str, Any], str | None, tuple[int, int] | None]:
    """(arch, kind, input resolution) from a stored TrackForge training config: model.arch with unset (None) keys
    left to the constructor defaults and `extra` merged, model.window_len, model.variant, data.resolution."""
    model = config.get("model") or {}
    plain = dict(model.get("arch") or {})
    extra = plain.pop("extra", None) or {}
    arch = {k: v for k, v in plain.items() if v is not None} | dict(extra)
    if model.get("window_len") is not None:
        arch["window_len"] = model["window_len"]
    res = (config.get("data") or {}).get("resolution")
    return arch, model.get("variant"), (tuple(int(v) for v in res) if res else None)


def _find_arch(hparams: Any) -> dict[str, Any] | None:
    """An `arch` dict saved in some Lightning module's hyper-parameters (top level or under model/cfg), if any."""
    if not isinstance(hparams, Mapping):
        return None
    if isinstance(hparams.get("arch"), Mapping):
        return {k: v for k, v in hparams["arch"].items() if v is not None}
    for key in ("model", "cfg"):
        found = _find_arch(hparams.get(key))
        if found is not None:
            return found
    return None


def _strip(sd: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if any(k.startswith("model.") for k in sd):  # drop the LightningModule's other members (e.g. teachers)
        sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    sd = {re.sub(r"^(module\.)+", "", k): v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"checkpoint entries are not tensors: {bad[:5]}")
    return sd


def parse_checkpoint(obj: Any, path: str | os.PathLike = "<checkpoint>") -> TrackerCheckpoint:
    """A loaded checkpoint object -> TrackerCheckpoint.

    Accepts a plain state dict, {"model": state_dict}, "module." prefixes (DDP), and Lightning checkpoints
    ({"state_dict": {"model.<key>": ...}, "hyper_parameters": ..., optionally "trackforge": metadata}).
    """
    path = Path(path)
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} is a {type(obj).__name__}, expected a dict of tensors")
    arch = kind = resolution = None
    if isinstance(obj.get("state_dict"), Mapping):
        sd = _strip(obj["state_dict"])
        meta, hparams = obj.get(METADATA_KEY), obj.get("hyper_parameters")
        if isinstance(meta, Mapping):
            if int(meta.get("format_version", 0)) > FORMAT_VERSION:
                raise CheckpointError(f"checkpoint {path} has TrackForge format {meta['format_version']}; this "
                                      f"version reads up to {FORMAT_VERSION} (update TrackForge)")
            arch, kind = dict(meta["arch"]), meta["variant"]
            resolution, origin = tuple(meta["input_resolution"]), "trackforge"
        elif isinstance(hparams, Mapping) and isinstance(hparams.get("config"), Mapping) \
                and isinstance(hparams["config"].get("model"), Mapping):
            arch, kind, resolution = _arch_from_config(hparams["config"])
            origin = "trackforge-config"
        else:
            arch, origin = _find_arch(hparams), "lightning"
    elif isinstance(obj.get("model"), Mapping):
        sd, origin = _strip(obj["model"]), "plain"
    else:
        sd, origin = _strip(obj), "plain"
    return TrackerCheckpoint(path, sd, arch, kind, resolution, origin)


def read_checkpoint(path: str | os.PathLike) -> TrackerCheckpoint:
    """Read and parse a checkpoint file (weights_only=True). FileNotFoundError / CheckpointError on failure."""
    return parse_checkpoint(load_file(path), path)


def infer_arch(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Architecture keywords recoverable from state-dict shapes (num_heads and model_resolution cannot be; they
    keep their defaults)."""
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


def weights_mismatch(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], max_keys: int | None = None
                     ) -> list[str]:
    """What keeps `sd` from loading strictly into `model`: the missing, unexpected and mis-shaped keys, one entry
    per kind with its count (at most `max_keys` keys named per kind); empty when it fits."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in sd and sd[k].shape != v.shape
    ]

    def listed(keys: list[str], sep: str) -> str:
        more = len(keys) - max_keys if max_keys is not None and len(keys) > max_keys else 0
        return sep.join(keys[: len(keys) - more]) + (f"{sep}... ({more} more)" if more else "")

    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {listed(missing, ', ')}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {listed(unexpected, ', ')}")
    if shapes:
        parts.append(f"mis-shaped keys ({len(shapes)}): {listed(shapes, '; ')}")
    return parts


def load_weights(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> None:
    """Strict load with one error naming every missing, unexpected and mis-shaped key."""
    parts = weights_mismatch(model, sd)
    if parts:
        raise CheckpointError("checkpoint does not match the model:\n  " + "\n  ".join(parts))
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in sd.items()})


def resolve_variant(variant: str | None, ckpt: TrackerCheckpoint | None = None) -> str:
    """The variant to build: `variant` if given (it must agree with a checkpoint that records its kind), else
    the recorded kind, else a guess from the file name ("online" in it -> online), else "offline"."""
    if variant is not None:
        _variant(variant)
        if ckpt is not None and ckpt.kind is not None and ckpt.kind != kind_of(variant):
            raise CheckpointError(f"{ckpt.path} holds an {ckpt.kind} model, but variant {variant!r} was asked "
                                  f"for (use {ckpt.kind!r} or leave the variant unset)")
        return variant
    if ckpt is not None and ckpt.kind is not None:
        return ckpt.kind
    if ckpt is not None and "online" in ckpt.path.name:
        return "online"
    return "offline"


def model_arch(ckpt: TrackerCheckpoint, variant: str) -> dict[str, Any]:
    """Constructor keywords of the checkpoint's model: recorded ones, else (our .ckpt files) inferred from the
    weights' shapes, else (official files) the official architecture with the variant's window."""
    if ckpt.arch is not None:
        arch = dict(ckpt.arch)
    elif ckpt.origin != "plain" or ckpt.path.suffix == ".ckpt":
        arch = infer_arch(ckpt.state_dict)
    else:
        arch = {}
    arch.setdefault("window_len", _variant(variant)[1])
    return arch


def build_tracker(ckpt: TrackerCheckpoint, variant: str | None = None, device: str | torch.device = "cpu"
                  ) -> CoTracker3Base:
    """The model a parsed checkpoint describes, with its weights, in eval mode on `device`."""
    variant = resolve_variant(variant, ckpt)
    cls = _variant(variant)[0]
    arch = model_arch(ckpt, variant)
    try:
        model = cls(**arch)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot build a {cls.__name__} from the architecture of {ckpt.path} {arch}: {exc}"
                              ) from exc
    load_weights(model, ckpt.state_dict)
    return model.to(device).eval()


def official_checkpoint_path(variant: str, cache_dir: str | os.PathLike | None = None, url: str | None = None
                             ) -> Path:
    """The official file of `variant` in the cache, downloaded once (from `url` if given)."""
    filename = _variant(variant)[2]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / filename
    if not path.exists():
        download(url or official_url(variant), path)
    return path


def load_tracker(
    variant: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    *,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "cpu",
    url: str | None = None,
) -> CoTracker3Base:
    """Build a tracker and load its weights; returns the model in eval mode on `device`.

    variant: "offline", "online", "baseline_offline", "baseline_online", or None: the kind a TrackForge checkpoint
    records (else "online" if the file name says so, else "offline"). A variant that disagrees with the
    checkpoint's recorded kind is an error.
    checkpoint: an official .pth, or a TrackForge Lightning .ckpt (its recorded architecture, window length and
    kind define the model; older ones: its stored config, else the shapes of its weights); None downloads the
    official file of `variant` (or `url`) once into `cache_dir` (default $TRACKFORGE_CACHE or ~/.cache/trackforge).
    """
    if variant is not None:
        _variant(variant)  # an unknown name is reported before any file is touched
    if checkpoint is None:
        variant = variant or "offline"
        path = official_checkpoint_path(variant, cache_dir, url)
    else:
        path = Path(checkpoint)
    return build_tracker(read_checkpoint(path), variant, device)
