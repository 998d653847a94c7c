"""Data-generation configs: typed OmegaConf dataclasses (no Blender here).

* ``data``: ``DataConfig`` = {scene, generate}, ``load_data_config(path, overrides)`` and the content hash.
* ``scene``: ``SceneConfig`` (what one scene shows and how it is rendered) and its actor groups.

Errors are ``tracker.common.errors.ConfigError`` (one line, naming the key).
"""
from tracker.common.errors import ConfigError
from datagen.config.data import (DEFAULT_WARM_IMPORTS, DataConfig, GenerateConfig, load_data_config)
from datagen.config.scene import SceneConfig

__all__ = ["ConfigError", "DEFAULT_WARM_IMPORTS", "DataConfig", "GenerateConfig", "SceneConfig",
           "load_data_config"]
