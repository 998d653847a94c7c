"""The ground floor under tracker, datagen and lightning_modules: one owner per rule.

* ``errors``: UserError / ConfigError / OutputNotWritableError and ``one_line`` (what every CLI prints as one line)
* ``atomic``: atomic file writes and ``check_writable``
* ``output_lock``: advisory locks on output folders (data sets, run dirs, caches)
* ``pixels``: pixel positions between resolutions (``rescale_xy``)
* ``config_loading``: typed OmegaConf configs from YAML + ``key=value`` overrides with one-line errors
* ``prediction``: ``Prediction``, the one type of predicted tracks

Standard library and numpy (omegaconf for config loading only): no torch, Kubric, bpy or TensorFlow, so that the
scene processes and the tracker both stand on it (docs/architecture.md).
"""
