"""Read pickles and object `.npy` files from users without running their code.

A pickle can name any importable callable and call it while loading (`os.system`, `builtins.exec`...), so
`pickle.load` and `np.load(..., allow_pickle=True)` on a downloaded file run whatever its author wanted. Data sets in
this field ship as pickles all the same (TAP-Vid's `.pkl`, CoTracker3's Kubric `<seq>.npy` holding a pickled dict),
so they are read here with an unpickler that resolves only numpy arrays, numpy scalars and dtypes, and plain
containers; anything else is refused with `UnsafePickleError` before it is called.
"""
from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

from tracker.common.errors import one_line

# (module, name) pairs a data pickle legitimately refers to. numpy 1.x writes `numpy.core.*`, numpy 2.x
# `numpy._core.*`; protocol 2 pickles spell bytes through `_codecs.encode`.
_NUMPY_GLOBALS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
ALLOWED_GLOBALS = frozenset(
    {(f"{pkg}.{mod}", name) for pkg in ("numpy.core", "numpy._core") for mod, name in _NUMPY_GLOBALS}
    | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("collections", "OrderedDict")}
    | {("builtins", n) for n in ("set", "frozenset", "complex", "bytearray", "slice", "range")}
    | {("numpy.dtypes", n) for n in dir(np.dtypes) if n.endswith("DType")}
)


class UnsafePickleError(ValueError):
    """The file is not a plain-data pickle (it names a callable outside the allow-list) or is unreadable."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], source: str) -> None:
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(f"{self.source}: refused to load: the pickle refers to {module}.{name}, which is not "
                                "a numpy array or plain container (only data pickles are read; nothing was executed)")


def _load(fh: IO[bytes], source: str) -> Any:
    try:
        return _RestrictedUnpickler(fh, source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as err:
        msg = one_line(err, 200)
        raise UnsafePickleError(f"{source}: not a readable data pickle ({msg})") from None


def load_pickle(path: str | os.PathLike) -> Any:
    """Plain data from a pickle file (dicts, lists, numpy arrays...). Raises FileNotFoundError for a missing file and
    UnsafePickleError for a pickle that names anything else or is corrupt."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pickle not found: {path}")
    with open(path, "rb") as fh:
        return _load(fh, str(path))


def loads_pickle(data: bytes, source: str = "<bytes>") -> Any:
    """`load_pickle` for bytes already in memory."""
    return _load(io.BytesIO(data), source)


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """A `.npy` file, object arrays included (what `np.save` writes for a dict), without `allow_pickle=True`.

    Returns the array; a pickled dict comes back as a 0-d object array (`.item()` gives the dict), as with
    `np.load(..., allow_pickle=True)`. Raises FileNotFoundError or UnsafePickleError (also for a corrupt header).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npy file not found: {path}")
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _fortran, dtype = read_header(fh)
        except ValueError as err:
            raise UnsafePickleError(f"{path}: not a .npy file ({one_line(err, 200)})") from None
        if not dtype.hasobject:
            fh.seek(0)
            try:
                return np.load(fh, allow_pickle=False)
            except ValueError as err:
                raise UnsafePickleError(f"{path}: corrupt .npy ({one_line(err, 200)})") from None
        array = _load(fh, str(path))  # np.save pickles object arrays whole after the header
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise UnsafePickleError(f"{path}: the pickled payload does not match the .npy header {shape}")
    return array
