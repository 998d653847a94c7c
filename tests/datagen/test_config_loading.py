"""tracker.common.config_loading: every broken config file or override is one ConfigError line naming it,
for both the training and the data-generation schema (one load path)."""
from __future__ import annotations

from pathlib import Path

import pytest

from datagen.config import load_data_config
from lightning_modules.config import load_train_config
from tracker.common.errors import ConfigError, UserError

REPO = Path(__file__).resolve().parents[2]
LOADERS = {"train": load_train_config, "data": load_data_config}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("which", ["train", "data"])
@pytest.mark.parametrize(("text", "needles"), [
    ("a:\n  b: [3\n", ["cfg.yaml", "YAML syntax error at line 3, column 1", "did not find expected ',' or ']'"]),
    ("- a\n- b\n", ["cfg.yaml", "the top level must be a mapping", "got a list"]),
    ("a: 1\na: 2\n", ["cfg.yaml", "duplicate"]),
])
def test_broken_file_is_one_line(tmp_path: Path, which: str, text: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        LOADERS[which](_write(tmp_path, text), [])
    msg = str(info.value)
    assert "\n" not in msg and all(n.lower() in msg.lower() for n in needles), msg


@pytest.mark.parametrize(("which", "override", "needles"), [
    ("train", "model.arch.encoder_dims=[32", ["override 'model.arch.encoder_dims=[32'", "not valid YAML"]),
    ("train", "trainer.max_stepz=3", ["unknown config key 'trainer.max_stepz'", "did you mean 'trainer.max_steps'"]),
    ("train", "trainer.max_steps=many", ["bad value for 'trainer.max_steps'", "'many'"]),
    ("train", "trainer=3", ["override 'trainer=3'", "TrainerConfig section must be a mapping"]),
    ("train", "model.arch.encoder_dims={a: 1}", ["override", "a list and a mapping do not merge"]),
    ("train", "=3", ["must look like key=value", "trainer.max_steps=200"]),
    ("train", "name='unterminated", ["override", "not valid YAML"]),
    ("data", "scene.resolution=[64", ["override 'scene.resolution=[64'", "not valid YAML"]),
    ("data", "scene.num_frams=3", ["unknown config key 'scene.num_frams'", "did you mean 'scene.num_frames'"]),
    ("data", "generate.num_scenes", ["must look like key=value", "generate.num_scenes=4"]),
])
def test_broken_override_is_one_line(which: str, override: str, needles: list[str]) -> None:
    path = REPO / "configs" / ("train/tiny_cpu.yaml" if which == "train" else "data/tiny.yaml")
    with pytest.raises(ConfigError) as info:
        LOADERS[which](path, [override])
    msg = str(info.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg


def test_empty_file_gives_the_defaults_and_errors_share_one_type(tmp_path: Path) -> None:
    assert load_train_config(_write(tmp_path, "")).trainer.max_steps == 50000
    import datagen.config
    import lightning_modules.config

    assert datagen.config.ConfigError is lightning_modules.config.ConfigError is ConfigError
    assert issubclass(ConfigError, UserError) and ConfigError.exit_code == 2
    assert str(ConfigError("two\n  lines")) == "two lines"
