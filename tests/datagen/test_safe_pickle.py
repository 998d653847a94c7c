"""The restricted unpickler reads real data pickles and refuses payloads before they run."""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from datagen.formats.safe_pickle import UnsafePickleError, load_npy, load_pickle, loads_pickle


class _Payload:
    """Unpickling this with plain pickle would create `marker` (a shell command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _OpenPayload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _data():
    return {"video": np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3), "points": np.linspace(0, 1, 12).reshape(3, 2, 2),
            "occluded": np.zeros((3, 2), bool), "name": "clip", "tags": ["a", ("b", 1.5)], "n": np.int64(7),
            "frames": [b"\xff\xd8jpeg", b"png"]}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k])
            assert a[k].dtype == b[k].dtype
        else:
            assert a[k] == b[k]


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_data_pickles_of_every_protocol(tmp_path, protocol):
    path = tmp_path / "d.pkl"
    path.write_bytes(pickle.dumps(_data(), protocol=protocol))
    _assert_same(load_pickle(path), _data())
    lst = [_data(), _data()]
    assert len(loads_pickle(pickle.dumps(lst, protocol=protocol))) == 2


@pytest.mark.parametrize("payload", [_Payload, _OpenPayload])
def test_payload_is_refused_and_not_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"video": np.zeros(3), "x": payload(marker)}))
    with pytest.raises(UnsafePickleError, match="refused to load") as err:
        load_pickle(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_object_npy_roundtrip_and_payload(tmp_path):
    good = tmp_path / "seq.npy"
    np.save(good, _data(), allow_pickle=True)
    back = load_npy(good)
    assert back.shape == () and back.dtype == object
    _assert_same(back.item(), _data())
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(load_npy(plain), np.arange(6.0).reshape(2, 3))

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.npy"
    np.save(evil, np.array({"coords": _Payload(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        load_npy(evil)
    assert not marker.exists()


def test_garbage_and_missing_files_give_one_line(tmp_path):
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(UnsafePickleError) as err:
        load_pickle(junk)
    assert "\n" not in str(err.value) and str(junk) in str(err.value)
    truncated = tmp_path / "cut.pkl"
    truncated.write_bytes(pickle.dumps(_data())[:-20])
    with pytest.raises(UnsafePickleError):
        load_pickle(truncated)
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"not an npy file at all")
    with pytest.raises(UnsafePickleError, match="not a .npy"):
        load_npy(bad_npy)
    with pytest.raises(FileNotFoundError):
        load_pickle(tmp_path / "missing.pkl")
