"""Benchmarks as validation sets during training, next to the held-out synthetic clips.

Config (training): `val_benchmarks: [{name, path, format, query_modes: [one mode], max_videos, max_frames}]`, the
same entries as an evaluation suite (configs/eval/*.yaml). Each is read once (through datagen.formats), prepared
with the TAP-Vid protocol (256 raster), split over the DDP ranks like the synthetic clips, and scored at every
validation with the joint evaluation predictor at the model's input size (the data plan's) and `model.val_iters`
iterations, scored by evaluation.scoring like `make eval`. Logged as `val_<name>/<metric>` and
`val_<name>_zero_motion/<metric>`; `checkpoint.monitor` may name any of them (checked at config time:
`config.check_val_benchmarks`). Benchmarks with object masks and no tracks (DAVIS) log
`mask_consistency` and `mask_consistency_<group>` (the mean over the group's videos; groups as in the evaluation
suite) instead of TAP-Vid metrics. `max_videos` / `max_frames` keep them cheap: a DAVIS video is decoded once at
setup, kept as its 256x256 raster plus its masks, and run at the model's input size like the synthetic clips.
"""
from __future__ import annotations

from typing import Any, Sequence

from torch.utils.data import DataLoader

from ..data import TrackDataModule
from ..data_plan import DataPlan
from ..val_clips import RankShare
from .groups import group_names, group_of
from .mask_scoring import METRIC as MASK_METRIC
from .protocol import EvalExample, make_example
from .scoring import METRIC_KEYS, Prediction, score, zero_motion
from .sources import EvalError, open_benchmark, resolve_format

BENCHMARK_KEYS = (*METRIC_KEYS, "pck")  # fixed order: every rank gathers the same vector


def benchmark_keys(bench: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(keys, always): the metrics a benchmark's rows are gathered under, in a fixed order (every rank gathers the
    same vector), and those logged even when no video has them (so a monitored metric always exists). Decided by
    its reader's labels (datagen.formats: "tracks" or "masks"), i.e. before any video is read."""
    from datagen.formats import reader_class

    if reader_class(resolve_format(bench)).labels == "masks":
        return (MASK_METRIC, *(f"{MASK_METRIC}_{g}" for g in group_names(bench.groups))), (MASK_METRIC,)
    return BENCHMARK_KEYS, METRIC_KEYS


def load_benchmark_examples(benchmarks: Sequence[Any]) -> list[list[EvalExample]]:
    """Per benchmark, its prepared examples (videos with nothing to query are left out). EvalError when a
    benchmark is unreadable or yields no example."""
    out = []
    for b in benchmarks:
        examples = []
        for s in open_benchmark(b):
            try:
                ex = make_example(s, b.query_modes[0], max_frames=b.max_frames)
            except ValueError as exc:  # e.g. a query mode that needs tracks on DAVIS masks
                raise EvalError(f"validation benchmark {b.name}: {s.key}: {exc}") from None
            if ex is not None:
                examples.append(ex)
        if not examples:
            raise EvalError(f"validation benchmark {b.name}: no video with a track or an object to query ({b.path})")
        out.append(examples)
    return out


def _example_entry(ex: EvalExample) -> dict:
    return {"example": ex}


def _identity(item):
    return item


def benchmark_loaders(examples: list[list[EvalExample]], rank: int, world: int) -> list[DataLoader]:
    """Per benchmark, rank `rank`'s share of its examples (val_clips.RankShare, like the synthetic clips); entries
    {"example": EvalExample, "pad": bool}."""
    return [DataLoader(RankShare(exs, rank, world, _example_entry), batch_size=None, shuffle=False, num_workers=0,
                       collate_fn=_identity) for exs in examples]


def score_example(model: Any, ex: EvalExample, input_size: Sequence[int], iters: int, groups: Any = None
                  ) -> tuple[dict[str, float], dict[str, float]]:
    """(model scores, zero-motion scores) of one example with the joint evaluation predictor, the model run at
    `input_size` (H, W) (a mask example: its short side at the video's aspect ratio, predict.TrackerRunner's
    default, as `make eval` runs it); a mask example also gets its score under mask_consistency_<its group>
    (`groups`: the benchmark's, None: the default groups)."""
    from .predict import TrackerRunner

    device = next(model.parameters()).device
    pred: Prediction = TrackerRunner(model, input_resolution=tuple(input_size), iters=iters, device=device)(ex)
    scores = score(ex, pred), score(ex, zero_motion(ex))
    if ex.masks is not None:
        key = f"{MASK_METRIC}_{group_of(ex.key, groups)}"
        for s in scores:
            s[key] = s[MASK_METRIC]
    return scores


class BenchmarkDataModule(TrackDataModule):
    """The training DataModule plus the benchmark validation sets, appended to the validation loaders
    (dataloader_idx 1, 2, ... in config order)."""

    def __init__(self, plan: DataPlan, seed: int, benchmarks: Sequence[Any]) -> None:
        super().__init__(plan, seed=seed)
        self.benchmarks = list(benchmarks)
        self.bench_examples: list[list[EvalExample]] | None = None

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.bench_examples is None:
            self.bench_examples = load_benchmark_examples(self.benchmarks)

    def val_dataloader(self):
        rank, world = self._rank_info()
        return [super().val_dataloader(), *benchmark_loaders(self.bench_examples or [], rank, world)]


def make_datamodule(cfg: Any, plan: DataPlan) -> TrackDataModule:
    """The training DataModule over `plan` (data_plan.build_data_plan(cfg)), seeded with cfg.seed: with
    `cfg.val_benchmarks`, one that also validates on them."""
    if cfg.val_benchmarks:
        return BenchmarkDataModule(plan, cfg.seed, cfg.val_benchmarks)
    return TrackDataModule(plan, seed=cfg.seed)
