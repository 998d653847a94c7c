"""Results of an evaluation suite -> one JSON file and one Markdown table (x100, like the papers)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .scoring import SUMMARY


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def markdown_table(results: dict[str, Any]) -> str:
    """One row per (benchmark, query mode, predictor mode): AJ, delta_avg, OA (and PCK when a benchmark has object
    areas) of the model, the same for the zero-motion baseline beside."""
    rows = results["results"]
    with_pck = any("pck" in r["model"] for r in rows)
    metrics = [*SUMMARY, *((("pck", "PCK@0.2"),) if with_pck else ())]
    head = ["benchmark", "queries", "predictor", "videos", *(label for _, label in metrics),
            *(f"{label} zero" for _, label in metrics)]
    lines = [f"Checkpoint `{results['checkpoint']}` ({results['variant']}, input {results['input_resolution'][0]}x"
             f"{results['input_resolution'][1]}, {results['iters']} iterations); TAP-Vid metrics x100 in the 256x256 "
             "raster; zero = zero-motion baseline (query position, always visible).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["benchmark"], r["query_mode"], r["mode"], str(r["num_videos"]),
                 *(percent(r["model"].get(k)) for k, _ in metrics), *(percent(r["zero_motion"].get(k)) for k, _ in metrics)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """<out_dir>/eval.json (everything, per video too; NaN written as null) and <out_dir>/eval.md (the table)."""
    from datagen.atomic import write_atomic, write_json  # a reader never sees half a report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "eval.json", out / "eval.md"
    write_json(json_path, results)
    write_atomic(md_path, markdown_table(results))
    return json_path, md_path
