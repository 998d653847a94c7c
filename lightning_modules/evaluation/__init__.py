"""Evaluation of trackers on benchmarks (TAP-Vid protocol, spec section 17; sparse keypoint annotations).

One job per module, data flowing one way:
    sources   benchmark name + format + path -> TrackSample stream (readers live in datagen.formats)
    protocol  TrackSample -> EvalExample: 256x256 raster, ground truth rescaled, queries ("first", "strided", "given")
      mask_queries  queries of videos with object masks and no tracks (DAVIS): a grid on each eroded object mask
    predict   EvalExample + model -> Prediction (joint or single-point evaluation predictor; online sliding windows)
    scoring   EvalExample + Prediction -> TAP-Vid metrics (+ PCK with an object area); the zero-motion baseline
      mask_scoring  mask consistency of mask examples (points stay inside their object's mask)
      groups    per-group means (e.g. people / animals) of a benchmark's videos
    cache     predictions on disk, keyed by checkpoint digest / benchmark / mode / video (a rerun only scores)
    suite     a checkpoint x a list of benchmarks x query modes x predictor modes -> results (progress bar)
    report    results -> JSON + Markdown tables (TAP-Vid; mask consistency per video and group)
    mask_benchmark  evaluate_mask_benchmark(model, DAVIS root): mask consistency from Python (training, bench)
    config    the typed suite config (configs/eval/*.yaml + key=value overrides)
    cli       `python -m lightning_modules eval` (`make eval`)
    validation  benchmarks as validation sets during training
Model loading is tracker.checkpoint's job (the one reader of checkpoints).
"""
