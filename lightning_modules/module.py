"""LightningModule: windowed CoTracker3 training with the Kubric recipe (spec 16.1) and TAP-Vid validation."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn

from .config import TrainConfig, arch_kwargs, from_container, recorded_input_size, to_container
# One scoring path with evaluation: the visibility threshold, the metric names, the per-clip scores (in the TAP-Vid
# raster) and their means are evaluation.scoring's.
from .evaluation.scoring import (METRIC_KEYS, VIS_THRESHOLD, Prediction, clip_scores, means_of_totals, metric_totals,
                                 stay_at_queries)


def weights_digest(tensors) -> str:
    """SHA-256 over the bytes of the given tensors (in order): equal digests = identical weights/data."""
    import hashlib

    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_model(cfg: TrainConfig) -> torch.nn.Module:
    """The tracker of `cfg.model` (random official initialisation), optionally loaded from `model.init_from`
    (whose architecture `config.resolve_model` has already checked against the config)."""
    from tracker.checkpoint import default_window_len, load_weights, read_checkpoint
    from tracker.model import CoTracker3Offline, CoTracker3Online

    cls = CoTracker3Online if cfg.model.variant == "online" else CoTracker3Offline
    window = cfg.model.window_len or default_window_len(cfg.model.variant)
    model = cls(window_len=window, **arch_kwargs(cfg.model.arch))
    model.updateformer.activation_checkpointing = bool(cfg.model.activation_checkpointing)
    if cfg.model.init_from:
        load_weights(model, read_checkpoint(cfg.model.init_from).state_dict)
    return model


def sample_queries(tracks: torch.Tensor, vis: torch.Tensor, variant: str, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Training queries of the recipe. tracks (B, L, N, 2) px, vis (B, L, N) bool -> queries (B, N, 3) (t, x, y),
    ok (B,) bool (False: a NaN or |query| > 1500; those samples' queries are set to ones and must be masked).

    online: first visible frame, except the first quarter of the tracks (random visible frame);
    offline: a uniformly random visible frame for every track.
    """
    B, Lf, N = vis.shape
    noise = torch.rand(vis.shape, generator=generator, device="cpu").to(vis.device)
    random_frame = torch.where(vis, noise, torch.full_like(noise, -1.0)).argmax(dim=1)  # (B, N) uniform among visible
    if variant == "online":
        first = vis.to(torch.uint8).argmax(dim=1)  # first True (0 if never visible)
        frame = torch.where(torch.arange(N, device=vis.device) < N // 4, random_frame, first)
    else:
        frame = random_frame
    xy = torch.gather(tracks, 1, frame[:, None, :, None].expand(B, 1, N, 2))[:, 0]  # (B, N, 2)
    queries = torch.cat([frame[..., None].to(tracks.dtype), xy], dim=-1)
    ok = torch.isfinite(queries).all(dim=(1, 2)) & (queries.abs() <= 1500).all(dim=(1, 2))
    queries = torch.where(ok[:, None, None], queries, torch.ones_like(queries))
    return queries, ok


def recipe_loss(train, tracks: torch.Tensor, vis: torch.Tensor, ok: torch.Tensor, coord_scale: float,
                conf_radius: float | None = None, visible_weight: float = 1.0):
    """The Kubric recipe loss of a batch (tracker.losses.kubric_loss) -> KubricLoss with confidence (B,).

    train: the model's TrainOutput; tracks (B, L, N, 2) px; vis (B, L, N) bool; ok (B,) from `sample_queries`;
    coordinates are multiplied by coord_scale first; conf_radius: the confidence target's radius in those scaled
    coordinates (None: the recipe's 12); visible_weight: the visibility BCE's weight of visible entries (recipe 1).
    The recipe's masked means and window means are per clip (it
    trains with one clip per batch), so each clip's loss is computed as in a batch of one and the batch loss is their
    mean: a batch of B clips gives the loss and gradients of B accumulated batches of one, averaged.
    """
    from tracker.losses import CONF_DIST_THRESH, KubricLoss, kubric_loss

    radius = CONF_DIST_THRESH if conf_radius is None else float(conf_radius)

    valid = train.valid.float() * ok[:, None, None].float()
    per_clip = []
    for b in range(tracks.shape[0]):
        clip = slice(b, b + 1)
        gt_w, vis_w, valid_w = [], [], []
        for start, coords in zip(train.window_starts, train.coords):
            window = slice(start, start + coords.shape[2])
            gt_w.append(tracks[clip, window] * coord_scale)
            vis_w.append(vis[clip, window].float())
            valid_w.append(valid[clip, window])
        coords_w = [c[:, clip] * coord_scale for c in train.coords]
        per_clip.append(kubric_loss(coords_w, [v[:, clip] for v in train.vis], [c[:, clip] for c in train.conf],
                                    gt_w, vis_w, valid_w, conf_dist_thresh=radius, visible_weight=visible_weight))
    mean = lambda name: torch.stack([getattr(loss, name) for loss in per_clip]).mean()  # noqa: E731
    return KubricLoss(mean("total"), mean("visible_track"), mean("occluded_track"), mean("visibility"),
                      torch.cat([loss.confidence for loss in per_clip]))


def configured_loss(model_cfg, train, tracks: torch.Tensor, vis: torch.Tensor, ok: torch.Tensor, width: int):
    """recipe_loss with a ModelConfig's loss settings: coordinates scaled by model.loss_coord_scale (None: 512 / the
    clips' width `width`, the recipe's 384x512 pixels), the confidence radius model.loss_conf_radius and the
    visibility loss's weight of visible points model.loss_visible_weight."""
    scale = model_cfg.loss_coord_scale or 512.0 / width
    return recipe_loss(train, tracks, vis, ok, scale, model_cfg.loss_conf_radius, model_cfg.loss_visible_weight)


def first_visible_queries(tracks: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """TAP-Vid "first" queries: tracks (L, N, 2), vis (L, N) bool -> (N, 3) (t, x, y) at the first visible frame."""
    first = vis.to(torch.uint8).argmax(dim=0)  # (N,)
    xy = tracks[first, torch.arange(tracks.shape[1])]
    return torch.cat([first[:, None].to(tracks.dtype), xy], dim=-1)


def _float64(t: torch.Tensor) -> np.ndarray:
    """A tensor as a float64 NumPy array on the CPU (scoring's input)."""
    return t.detach().cpu().double().numpy()


class TrackerModule(L.LightningModule):
    """Trains CoTracker3Online (sliding windows) or CoTracker3Offline (one window) on `TrackDataModule` batches."""

    def __init__(self, config: dict[str, Any], run_dir: str | None = None) -> None:
        """config: the run's resolved config as a plain dict (to_container(data_plan.resolved_config(cfg, plan))):
        the architecture and the input size are the data plan's, recorded under the config's keys."""
        super().__init__()
        # The resolved config travels inside every checkpoint (hyper_parameters["config"]), so the checkpoint alone
        # rebuilds the model; that is why the module reads the plan's values from it rather than from the plan.
        self.save_hyperparameters({"config": config})
        self.cfg: TrainConfig = from_container(config)
        self.input_size = recorded_input_size(self.cfg)  # (H, W): what the model sees in validation
        self.model = build_model(self.cfg)
        self.run_dir = Path(run_dir) if run_dir else None
        self._val: list[dict[str, float]] = []
        self._val_zero: list[dict[str, float]] = []
        self.viz_sample: dict[str, np.ndarray] | None = None
        self._streams: dict[int, int] = {}
        self._skipped_reported = 0
        self._dropped: dict[int, int] = {}
        self._last_batch_time: float | None = None
        self._bench_keys: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}  # validation.benchmark_keys
        self._micro_batches: tuple[int, int] = (-1, 0)  # (global step, micro-batches drawn in it): _step_generator

    # -------------------------------------------------------------------------------------------------- training
    def forward(self, video: torch.Tensor, queries: torch.Tensor, iters: int, is_train: bool = False):
        return self.model(video, queries, iters=iters, is_train=is_train)

    def _data_counters(self, batch: dict) -> None:
        """Sum the per-stream skip/drop counters carried by the batches (DataLoader workers count separately)."""
        if "stream" not in batch:
            return
        sid = int(batch["stream"])
        self._streams[sid] = max(self._streams.get(sid, 0), int(batch["skipped"]))
        self._dropped[sid] = max(self._dropped.get(sid, 0), int(batch["dropped"]))
        skipped = sum(self._streams.values())
        if skipped > self._skipped_reported:
            rank_zero_warn(f"training data: skipped {skipped} corrupt sample(s)/shard(s) so far "
                           f"(rank {self.global_rank})")
            self._skipped_reported = skipped
        self.log("data/skipped_corrupt", float(skipped), on_step=True, on_epoch=False, reduce_fx="max")
        self.log("data/dropped_few_tracks", float(sum(self._dropped.values())), on_step=True, on_epoch=False)

    def _log_keys(self, keys: list[str], video: torch.Tensor) -> None:
        """data.log_keys: append "<step> <key>:<fingerprint of the augmented clip> ..." to keys/rank<r>.txt."""
        if not (self.cfg.data.log_keys and self.run_dir is not None):
            return
        path = self.run_dir / "keys" / f"rank{self.global_rank}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        prints = [f"{k}:{weights_digest([v])[:12]}" for k, v in zip(keys, video)]
        with open(path, "a") as fh:
            fh.write(f"{self.global_step} " + " ".join(prints) + "\n")

    def on_train_end(self) -> None:
        if self.cfg.data.log_keys and self.run_dir is not None:
            path = self.run_dir / "keys" / f"weights_rank{self.global_rank}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(weights_digest(self.model.state_dict().values()) + "\n")

    def _step_generator(self) -> torch.Generator:
        """The training step's own random numbers (the query frames): seeded from (seed, rank, global step, micro-
        batch of the step), not from the process-wide generator, so that a run resumed from a checkpoint draws at
        each step what an uninterrupted run draws there (the data stream is seeded by the step as well:
        lightning_modules.train_stream). Not batch_idx: a resumed epoch does not restart its batch count."""
        step = int(self.global_step)
        micro = self._micro_batches[1] if self._micro_batches[0] == step else 0  # gradient accumulation
        self._micro_batches = (step, micro + 1)
        key = [int(self.cfg.seed), int(self.global_rank), step, micro]
        return torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        video = batch["video"].float()  # (B, L, 3, H, W) 0..255
        tracks = batch["tracks"].float()  # (B, L, N, 2)
        vis = batch["visibility"].bool()  # (B, L, N)
        self._data_counters(batch)
        self._log_keys(list(batch["keys"]), batch["video"])
        queries, ok = sample_queries(tracks, vis, self.cfg.model.variant, generator=self._step_generator())
        out = self.model(video, queries, iters=self.cfg.model.train_iters, is_train=True)
        loss = configured_loss(self.cfg.model, out.train, tracks, vis, ok, video.shape[-1])
        B = video.shape[0]
        for name, value in loss.as_dict().items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss", batch_size=B, on_step=True)
        return loss.total

    def on_train_epoch_start(self) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "set_start_step"):
            dm.set_start_step(self.global_step)

    # ------------------------------------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val, self._val_zero = [], []
        self._bench = {b.name: ([], []) for b in self.cfg.val_benchmarks}  # name -> (model rows, zero-motion rows)

    @torch.no_grad()
    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        if batch.get("pad", False):  # a filler that keeps DDP ranks in step (val_clips.rank_val_clips)
            return
        if dataloader_idx > 0:  # a benchmark of `val_benchmarks` (lightning_modules.evaluation.validation)
            from .evaluation.validation import score_example

            bench = self.cfg.val_benchmarks[dataloader_idx - 1]
            model_rows, zero_rows = self._bench[bench.name]
            scores, zero = score_example(self.model, batch["example"], self.input_size, self.cfg.model.val_iters,
                                         bench.groups)
            model_rows.append(scores)
            zero_rows.append(zero)
            return
        video = batch["video"].float()[None]  # (1, L, 3, H, W)
        tracks, vis = batch["tracks"].float(), batch["visibility"].bool()  # (L, N, 2), (L, N)
        H, W = video.shape[-2:]
        queries = first_visible_queries(tracks, vis)
        out = self.model(video, queries[None], iters=self.cfg.model.val_iters)
        pred = out.coords[0].float()
        pred_vis = (out.vis[0].float() * out.conf[0].float()) > VIS_THRESHOLD
        q, gt, gt_vis = _float64(queries), _float64(tracks), vis.cpu().numpy()
        self._val.append(clip_scores(q, gt, gt_vis, Prediction(_float64(pred), pred_vis.cpu().numpy()), (H, W)))
        self._val_zero.append(clip_scores(q, gt, gt_vis, stay_at_queries(q, len(gt)), (H, W)))
        if batch_idx == 0 and self.global_rank == 0:
            self.viz_sample = {
                "video": batch["video"].permute(0, 2, 3, 1).cpu().numpy(),  # (L, H, W, 3) uint8
                "gt_tracks": tracks.cpu().numpy(), "gt_vis": vis.cpu().numpy(),
                "pred_tracks": pred.cpu().numpy(), "pred_vis": pred_vis.cpu().numpy(),
            }

    def _gathered_means(self, rows: list[dict[str, float]], keys: tuple[str, ...] = METRIC_KEYS,
                        always: tuple[str, ...] = METRIC_KEYS) -> dict[str, float]:
        """Means over all clips of all ranks (evaluation.scoring's metric_totals / means_of_totals: NaN clips left
        out; a key no clip of any rank has is left out, unless it is in `always`). Every rank must call this with
        the same keys in the same order: the all-gathers pair up."""
        totals = metric_totals(rows, keys).to(self.device)
        if self.trainer.world_size > 1:
            totals = self.all_gather(totals).reshape(-1, 2, len(keys)).sum(0)
        return means_of_totals(totals, keys, always)

    def on_validation_epoch_end(self) -> None:
        model_m = self._gathered_means(self._val)
        zero_m = self._gathered_means(self._val_zero)
        for name, metrics in (("val", model_m), ("val_zero_motion", zero_m)):
            for k, v in metrics.items():
                self.log(f"{name}/{k}", v, sync_dist=False, rank_zero_only=False)
            self.log(f"{name}/delta_avg", metrics["average_pts_within_thresh"], sync_dist=False)
        benchmarks = {}
        for bench in self.cfg.val_benchmarks:  # the same order on every rank: the all-gathers pair up
            from .evaluation.config import log_prefixes
            from .evaluation.validation import benchmark_keys

            if bench.name not in self._bench_keys:  # a format detection: once per run, not per validation
                self._bench_keys[bench.name] = benchmark_keys(bench)
            keys, always = self._bench_keys[bench.name]
            model_rows, zero_rows = self._bench[bench.name]
            for prefix, rows in zip(log_prefixes(bench.name), (model_rows, zero_rows)):
                metrics = self._gathered_means(rows, keys, always)
                for k, v in metrics.items():
                    self.log(f"{prefix}/{k}", v, sync_dist=False, rank_zero_only=False)
                if "average_pts_within_thresh" in metrics:
                    self.log(f"{prefix}/delta_avg", metrics["average_pts_within_thresh"], sync_dist=False)
                benchmarks[prefix[len("val_"):]] = metrics
        self.last_val = {"model": model_m, "zero_motion": zero_m, "benchmarks": benchmarks,
                         "step": int(self.global_step)}

    # ------------------------------------------------------------------------------------------------- optimizer
    def configure_optimizers(self):
        from .schedule import make_optimizer_and_scheduler

        opt, sched = make_optimizer_and_scheduler(self.model.named_parameters(), self.cfg.optim, self.cfg.trainer.max_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        if self._last_batch_time is not None:
            dt = now - self._last_batch_time
            samples = batch["video"].shape[0] * self.trainer.world_size
            self.log("perf/samples_per_s", samples / max(dt, 1e-9), on_step=True, on_epoch=False)
        self._last_batch_time = now
        if torch.cuda.is_available() and self.device.type == "cuda":
            self.log("perf/gpu_mem_peak_gb", torch.cuda.max_memory_allocated(self.device) / 2**30, on_step=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the model (kind, full architecture, training resolution) in TrackForge's checkpoint format, so
        tracker.load_tracker, the tracking CLI, evaluation and model.init_from rebuild it from the file alone."""
        from tracker.checkpoint import METADATA_KEY, tracker_metadata

        checkpoint[METADATA_KEY] = tracker_metadata(self.model, self.input_size)

    def config_dict(self) -> dict[str, Any]:
        return to_container(self.cfg)
