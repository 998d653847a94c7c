"""Results of an evaluation suite -> one JSON file and Markdown tables (x100, like the papers): TAP-Vid metrics,
and mask consistency per video and per group for mask benchmarks (DAVIS)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .mask_scoring import METRIC as MASK_METRIC
from .scoring import SUMMARY


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """The checkpoint line, then one table per kind of benchmark present: TAP-Vid benchmarks (tapvid_table) and
    mask benchmarks (mask_table); a kind without benchmarks prints nothing, so DAVIS masks never get TAP-Vid
    columns."""
    rows = results["results"]
    tapvid = [r for r in rows if r.get("metric", "tapvid") == "tapvid"]
    masks = [r for r in rows if r.get("metric") == MASK_METRIC]
    h, w = results["input_resolution"]
    kept = sorted({r["benchmark"] for r in rows if r.get("keep_aspect")})
    size = f"input {h}x{w}" + (f", for {', '.join(kept)} of short side {min(h, w)} at each video's aspect ratio"
                               if kept else "")
    lines = [f"Checkpoint `{results['checkpoint']}` ({results['variant']}, {size}, {results['iters']} iterations)"
             + ("; TAP-Vid metrics x100 in the 256x256 raster; zero = zero-motion baseline (query position, always "
                "visible)." if tapvid else ".")]
    if tapvid:
        lines += ["", tapvid_table(tapvid)]
    if masks:
        lines += ["", mask_table(masks)]
    return "\n".join(lines).rstrip("\n") + "\n"


def tapvid_table(rows: list[dict[str, Any]]) -> str:
    """One row per (benchmark, query mode, predictor mode): AJ, delta_avg, OA (and PCK when a benchmark has object
    areas) of the model, the same for the zero-motion baseline beside."""
    with_pck = any("pck" in r["model"] for r in rows)
    metrics = [*SUMMARY, *((("pck", "PCK@0.2"),) if with_pck else ())]
    head = ["benchmark", "queries", "predictor", "videos", *(label for _, label in metrics),
            *(f"{label} zero" for _, label in metrics)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["benchmark"], r["query_mode"], r["mode"], str(r["num_videos"]),
                 *(percent(r["model"].get(k)) for k, _ in metrics), *(percent(r["zero_motion"].get(k)) for k, _ in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def mask_table(rows: list[dict[str, Any]]) -> str:
    """Per (benchmark, predictor mode): a row per video, then the mean of each group and of all videos ("mean" in
    the video column), mask consistency x100 of the model and of the zero-motion baseline."""
    head = ["benchmark", "predictor", "video", "group", "videos", "queries", "mask consistency", "zero motion"]
    lines = ["Mask consistency x100 (docs/evaluation.md): share of the points queried on an object's eroded mask that "
             "are inside that object's mask in the later frames where it is present; zero = zero-motion baseline.",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def line(r: dict[str, Any], video: str, group: str, videos: int, queries: int, part: dict[str, Any]) -> None:
        cells = [r["benchmark"], r["mode"], video, group, str(videos), str(queries),
                 percent(part["model"].get(MASK_METRIC)), percent(part["zero_motion"].get(MASK_METRIC))]
        lines.append("| " + " | ".join(cells) + " |")

    for r in rows:
        for v in r["per_video"]:
            line(r, v["name"], v["group"], 1, v["num_queries"], v)
        for group, g in r.get("groups", {}).items():
            queries = sum(v["num_queries"] for v in r["per_video"] if v["group"] == group)
            line(r, "mean", group, g["num_videos"], queries, g)
        line(r, "mean", "all", r["num_videos"], sum(v["num_queries"] for v in r["per_video"]), r)
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """<out_dir>/eval.json (everything, per video too; NaN written as null) and <out_dir>/eval.md (the table)."""
    from tracker.common.atomic import write_atomic, write_json  # a reader never sees half a report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "eval.json", out / "eval.md"
    write_json(json_path, results)
    write_atomic(md_path, markdown_table(results))
    return json_path, md_path
