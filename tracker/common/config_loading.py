"""Typed OmegaConf configs from a YAML file and `key=value` overrides, with one-line `ConfigError`s.

`merge_config(schema, path, overrides)` is the load path of both `datagen` and `lightning_modules` configs:
structured defaults <- YAML file <- each override in order. Every problem names the file or the override and
the key: a missing file, a YAML syntax error (line and column), a top level that is not a mapping, an unknown
key (with OmegaConf's "did you mean"), a value of the wrong type, a malformed override.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .errors import ConfigError, one_line


def _first_line(err: BaseException) -> str:
    msg = getattr(err, "msg", None) or str(err)
    lines = [line for line in str(msg).strip().splitlines() if line.strip()]
    return lines[0].strip() if lines else type(err).__name__


def _close_key(schema: DictConfig | None, key: str) -> str | None:
    """The schema key nearest to an unknown dotted `key` among its siblings (None if nothing is close)."""
    if schema is None:
        return None
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(schema, parent) if parent else schema
    if not isinstance(node, DictConfig):
        return None
    match = difflib.get_close_matches(leaf, [str(k) for k in node.keys()], n=1)
    return match[0] if match else None


def omegaconf_error(err: BaseException, source: str, schema: DictConfig | None = None) -> ConfigError:
    """An OmegaConf merge/validation exception -> ConfigError '<source>: <problem> <full key>' (one line).
    With `schema`, an unknown key gets the nearest known one as a suggestion."""
    key = getattr(err, "full_key", None) or getattr(err, "key", None)
    first = _first_line(err)
    if isinstance(err, (ConfigKeyError, ConfigAttributeError)) and key:
        hint = re.search(r"Did you mean: '([^']+)'\?", str(err))
        near = hint.group(1) if hint else _close_key(schema, str(key))
        parent = str(key).rpartition(".")[0]
        suggestion = f" (did you mean '{parent + '.' if parent else ''}{near}'?)" if near else ""
        return ConfigError(f"{source}: unknown config key '{key}'{suggestion}")
    if key:
        return ConfigError(f"{source}: bad value for '{key}': {first}")
    section = re.match(r"Merge error: (\w+) is not a subclass of (\w+)\. value: (.*)", first)
    if section:  # a scalar or list where a whole section (a dataclass) belongs, e.g. 'trainer=3'
        got, schema, value = section.groups()
        return ConfigError(f"{source}: a {schema} section must be a mapping, got {value} ({got})")
    return ConfigError(f"{source}: {first}")


def yaml_problem(err: BaseException, *, with_position: bool) -> str:
    """A PyYAML error in one line: the problem, what the parser was doing, and (for files) line and column."""
    problem = getattr(err, "problem", None)
    if not problem:
        return one_line(err)
    context = getattr(err, "context", None)
    text = f"{problem}" + (f" ({context})" if context else "")
    mark = getattr(err, "problem_mark", None)
    if with_position and mark is not None:
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {text}"
    return f"not valid YAML: {text}"


def _container_mismatch(err: TypeError) -> str:
    # OmegaConf's "Cannot merge incompatible container types": a list given where a mapping belongs, or vice versa.
    return f"a list and a mapping do not merge ({one_line(err)})"


def _load_file(path: Path, sections: list[str]) -> DictConfig | None:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or one_line(err)}") from None
    except OmegaConfBaseException as err:  # e.g. duplicate keys, bad interpolation syntax
        raise ConfigError(f"{path}: {_first_line(err)}") from None
    except Exception as err:  # yaml.YAMLError (PyYAML is OmegaConf's parser) and friends
        raise ConfigError(f"{path}: {yaml_problem(err, with_position=True)}") from None
    if loaded is None or (isinstance(loaded, DictConfig) and not loaded):
        return None  # an empty file: the defaults
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping (keys: {', '.join(sections)}), "
                          f"got a {'list' if OmegaConf.is_list(loaded) else type(loaded).__name__}")
    return loaded


def _parse_override(item: str, example: str) -> DictConfig:
    key, eq, _ = item.partition("=")
    if not eq or not key.strip():
        raise ConfigError(f"override {item!r} must look like key=value (e.g. {example})")
    try:
        return OmegaConf.from_dotlist([item])
    except OmegaConfBaseException as err:
        raise ConfigError(f"override {item!r}: {_first_line(err)}") from None
    except Exception as err:  # yaml.YAMLError inside the value, e.g. 'a.b=[32'
        raise ConfigError(f"override {item!r}: {yaml_problem(err, with_position=False)}") from None


def merge_config(schema: DictConfig, path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                 *, example: str) -> DictConfig:
    """`schema` (OmegaConf.structured of the config dataclass; the caller decides on struct mode) <- YAML at
    `path` <- overrides, one at a time.

    Returns the merged, typed DictConfig; raises ConfigError (one line naming the file or the override) on any
    problem. `example` is a valid override shown when one is malformed (e.g. 'trainer.max_steps=200').
    """
    sections = list(schema.keys())
    cfg = schema
    if path is not None:
        loaded = _load_file(Path(path), sections)
        if loaded is not None:
            try:
                cfg = OmegaConf.merge(cfg, loaded)
            except OmegaConfBaseException as err:
                raise omegaconf_error(err, str(path), schema) from None
            except TypeError as err:
                raise ConfigError(f"{path}: {_container_mismatch(err)}") from None
    for item in overrides:
        parsed = _parse_override(item, example)
        source = f"override {item!r}"
        try:
            cfg = OmegaConf.merge(cfg, parsed)
        except OmegaConfBaseException as err:
            raise omegaconf_error(err, source, schema) from None
        except TypeError as err:
            raise ConfigError(f"{source}: {_container_mismatch(err)}") from None
    return cfg  # type: ignore[return-value]
