"""datagen.formats.shard_io on real rendered samples: round trip, corrupt/truncated data -> clear errors."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

import datagen
from datagen.formats.sample import TrackSample
from datagen.formats.shard_io import (CorruptSampleError, CorruptShardError, NoShardsError, decode_sample,
                                      encode_sample, iter_tar_samples, write_tar)
from datagen.formats.shards import read_shards

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # uses the rendered tiny_shards fixture


@pytest.fixture(scope="module")
def real_samples(tiny_shards):
    return list(read_shards(str(tiny_shards / "shard-*.tar")))


def test_tiny_shards_layout(tiny_shards, real_samples):
    assert sorted(p.name for p in tiny_shards.glob("shard-*.tar")) == ["shard-000000.tar", "shard-000001.tar"]
    assert [s.key for s in real_samples] == ["scene-000000", "scene-000001", "scene-000002"]
    names = tarfile.open(tiny_shards / "shard-000000.tar").getnames()
    assert names[:5] == ["scene-000000.video.npy.zst", "scene-000000.tracks.npy", "scene-000000.visibility.npy",
                         "scene-000000.tracks3d.npy", "scene-000000.meta.json"]
    for s in real_samples:
        assert isinstance(s, TrackSample)
        t, q = s.num_frames, s.num_tracks
        assert s.video.shape == (6, 64, 64, 3) and s.video.dtype == np.uint8
        assert s.tracks.dtype == np.float32 and s.tracks.shape == (6, 512, 2)
        assert s.visibility.dtype == bool and s.visibility.shape == (t, q)
        assert s.tracks3d.dtype == np.float32 and s.tracks3d.shape == (t, q, 3)
        assert s.meta["key"] == s.key and s.meta["video_codec"] == "npy_zstd"
        np.testing.assert_array_equal(s.query_frames, s.meta["query_frames"])
        assert s.query_frames.dtype == np.int64
        assert s.visibility[s.query_frames, np.arange(q)].all()  # always visible where it was sampled
        assert s.video.std() > 1.0  # a real image, not a constant
    cats = {c for s in real_samples for c in np.asarray(s.meta["track_category"])}
    names = real_samples[0].meta["category_names"]
    assert {"object", "human", "animal"} <= {names[c] for c in cats}


@pytest.mark.parametrize("codec", ["ffv1", "npy_zstd"])
def test_round_trip_all_fields_equal(tmp_path, real_samples, codec):
    originals = real_samples
    raws = [encode_sample(s, f"k{i}", codec) for i, s in enumerate(originals)]
    write_tar(tmp_path / "shard-000000.tar", raws[:2])
    write_tar(tmp_path / "shard-000001.tar", raws[2:])
    assert not list(tmp_path.glob("*.tmp-*"))  # atomic write leaves no temp file
    back = list(datagen.read_shards(str(tmp_path / "shard-{000000..000001}.tar")))
    assert [b.key for b in back] == ["k0", "k1", "k2"]
    for orig, b in zip(originals, back):
        for name in ("video", "tracks", "visibility", "tracks3d", "query_frames"):
            assert getattr(b, name).dtype == getattr(orig, name).dtype
            np.testing.assert_array_equal(getattr(b, name), getattr(orig, name))
        meta = dict(b.meta)
        assert meta.pop("video_codec") == codec and meta.pop("key") == b.key
        expected = json.loads(json.dumps(orig.meta))
        expected.pop("key"), expected.pop("video_codec")  # orig came from a shard: it has them too
        assert meta == expected
        assert not {"timings", "render_threads"} & set(b.meta)  # content only: no timings, no thread count
    # a list of paths works too, and identical input gives byte-identical tars
    write_tar(tmp_path / "again.tar", raws[:2])
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "shard-000000.tar").read_bytes()
    assert len(list(read_shards([tmp_path / "shard-000001.tar", str(tmp_path / "again.tar")]))) == 3
    assert [b.key for b in read_shards(tmp_path)] == ["k0", "k1", "k2"]  # a folder: its shard-*.tar


def test_no_pickles(tiny_shards):
    raw = next(iter_tar_samples(tiny_shards / "shard-000000.tar"))
    for name in ("tracks.npy", "visibility.npy", "tracks3d.npy"):
        np.load(io.BytesIO(raw[name]), allow_pickle=False)  # raises on object arrays


def _raw(real_samples, codec="npy_zstd") -> dict:
    return encode_sample(real_samples[0], "scene-000000", codec)


def _npy(a) -> bytes:
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


@pytest.mark.parametrize("damage, reason", [
    (lambda r: r.pop("tracks.npy"), "missing member(s) tracks.npy"),
    (lambda r: r.pop("meta.json"), "missing member(s) meta.json"),
    (lambda r: r.pop("video.npy.zst"), "missing member(s) video"),
    (lambda r: r.update({"tracks.npy": r["tracks.npy"][:-40]}), "cannot load tracks.npy"),
    (lambda r: r.update({"video.npy.zst": r["video.npy.zst"][:-100]}), "cannot decode video.npy.zst"),
    (lambda r: r.update({"video.npy.zst": _flip(r["video.npy.zst"], len(r["video.npy.zst"]) // 2)}),
     "cannot decode video.npy.zst"),  # zstd checksum catches a flipped bit
    (lambda r: r.update({"video.npy.zst": b"not zstd"}), "cannot decode video.npy.zst"),
    (lambda r: r.update({"tracks.npy": _npy(np.zeros((5, 512, 2), np.float32))}), "tracks.npy has shape"),
    (lambda r: r.update({"visibility.npy": _npy(np.zeros((6, 7), bool))}), "visibility.npy has shape"),
    (lambda r: r.update({"tracks.npy": _npy(np.zeros((6, 512, 2), np.float64))}), "dtype float64"),
    (lambda r: r.update({"meta.json": b"{truncated"}), "cannot parse meta.json"),
    # numpy alone calls anything that is not .npy "pickled (object) data": say what is really wrong
    (lambda r: r.update({"tracks.npy": b"hello world"}),
     "cannot load tracks.npy: not a .npy array: it starts with b'hello world'"),
    (lambda r: r.update({"tracks.npy": b""}), "cannot load tracks.npy: it is empty"),
    (lambda r: r.update({"tracks.npy": r["tracks.npy"][:60]}), "cannot load tracks.npy: EOF: reading array header"),
    (lambda r: r.update({"visibility.npy": _npy(np.array([{"x": 1}], dtype=object))}),
     "cannot load visibility.npy: it holds an object array (pickled Python objects)"),
])
def test_decode_sample_rejects_bad_members(real_samples, damage, reason):
    raw = _raw(real_samples)
    damage(raw)
    with pytest.raises(CorruptSampleError) as info:
        decode_sample(raw)
    assert "scene-000000" in str(info.value) and reason in str(info.value)
    assert "pickled (object) data" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("damage", [
    lambda r: r.update({"video.mkv": r["video.mkv"][: len(r["video.mkv"]) // 3]}),  # fewer frames or undecodable
    lambda r: r.update({"video.mkv": b"not a video at all"}),
])
def test_decode_sample_rejects_bad_ffv1(real_samples, damage):
    raw = _raw(real_samples, "ffv1")
    assert decode_sample(dict(raw)).video.shape == (6, 64, 64, 3)
    damage(raw)
    with pytest.raises(CorruptSampleError, match="scene-000000.*(video|shape)"):
        decode_sample(raw)


def test_truncated_and_garbage_tars(tmp_path, tiny_shards):
    data = (tiny_shards / "shard-000000.tar").read_bytes()
    with tarfile.open(tiny_shards / "shard-000000.tar") as tf:
        members = tf.getmembers()
    boundary = members[3].offset_data + -(-members[3].size // 512) * 512  # end of the 4th member
    cases = {
        "mid_member": data[: members[0].offset_data + 100],
        "half": data[: len(data) // 2],
        "at_boundary": data[:boundary],  # parses cleanly but has no end-of-archive blocks
        "garbage": b"\x00garbage" * 100,
        "empty": b"",
    }
    for name, blob in cases.items():
        path = tmp_path / f"{name}.tar"
        path.write_bytes(blob)
        with pytest.raises(CorruptSampleError) as info:
            list(read_shards(str(path)))
        assert str(path) in str(info.value) or "scene-000000" in str(info.value), name
    # truncated at a boundary: caught either as a short sample or as a missing end-of-archive marker
    with pytest.raises(CorruptShardError):
        list(iter_tar_samples(tmp_path / "at_boundary.tar"))


def test_no_match_error(tmp_path):
    with pytest.raises(NoShardsError, match="no shards match"):
        list(read_shards(str(tmp_path / "shard-*.tar")))


def test_read_shards_imports_without_blender():
    code = ("import sys, datagen; from datagen import read_shards; import datagen.formats.shard_io; "
            "bad = [m for m in ('bpy', 'kubric', 'tensorflow') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


def test_cli_corrupt_shard_one_line_error(tmp_path, tiny_shards):
    path = tmp_path / "shard-000000.tar"
    path.write_bytes((tiny_shards / "shard-000000.tar").read_bytes()[:5000])
    for args in (["stats", str(path)], ["preview", str(path), "--out", str(tmp_path / "p.mp4")],
                 ["stats", str(tmp_path / "nothing-*.tar")]):
        proc = subprocess.run([sys.executable, "-m", "datagen", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 1
        assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
