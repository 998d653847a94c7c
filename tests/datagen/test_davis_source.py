"""The DAVIS reader (datagen.formats.davis) on DAVIS folders the tests write: single-object 0/255 masks
(DAVIS-2016), palette masks with several objects and void pixels (DAVIS-2017), and one-line errors naming the
sequence for every inconsistency."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datagen.formats.shard_io import CorruptSampleError
from datagen.formats import detect_format, open_source
from tests.conftest import moving_square_video, write_davis_sequence


def test_single_object_masks_are_read_with_id_1(tmp_path):
    video, masks = moving_square_video(T=5)
    write_davis_sequence(tmp_path, "goat", video, masks)
    write_davis_sequence(tmp_path, "blackswan", *moving_square_video(T=3, seed=1))
    assert detect_format(str(tmp_path)) == "davis" and detect_format(f"{tmp_path}/") == "davis"
    src = open_source(str(tmp_path))
    assert src.items == ["blackswan", "goat"]
    info = src.info()
    assert (info.num_items, info.num_frames, info.height, info.width) == (2, 3, 40, 56)
    swan, goat = list(src)
    assert goat.key == "goat" and goat.num_frames == 5 and goat.num_tracks == 0
    assert goat.masks.dtype == np.uint8 and goat.masks.shape == (5, 40, 56)
    np.testing.assert_array_equal(goat.masks, masks)  # 255 in the file is object 1
    # Frames in order and aligned with their masks: the bright square is where the mask says (JPEG blurs the noise).
    inside = goat.video[masks == 1].mean(axis=-1)
    assert inside.mean() > 170 and goat.video[masks == 0].mean() < 80
    assert np.abs(goat.video.astype(int) - video).mean() < 30
    assert swan.num_frames == 3 and swan.meta["source"] == "davis"


def test_palette_masks_keep_object_ids_and_void(tmp_path):
    video, square = moving_square_video(T=4)
    masks = square.copy()
    masks[:, 30:36, 40:50] = 2  # a second object
    masks[:, 9, :] = np.where(masks[:, 9, :] == 0, 255, masks[:, 9, :])  # a void line above the square
    write_davis_sequence(tmp_path, "dogs", video, masks, palette=True)
    (sample,) = open_source(str(tmp_path))
    np.testing.assert_array_equal(sample.masks, masks)
    assert set(np.unique(sample.masks)) == {0, 1, 2, 255}


def test_binary_mask_saved_with_a_palette_is_one_object(tmp_path):
    """A palette sequence with no id in 1..254 but with 255: a 0/255 mask stored as "P", so 255 is the object."""
    video, square = moving_square_video(T=3)
    write_davis_sequence(tmp_path, "libby", video, square * 255, palette=True)
    (sample,) = open_source(str(tmp_path))
    np.testing.assert_array_equal(sample.masks, square)


def _break(root: Path, case: str) -> str:
    annots, frames = root / "Annotations" / "480p" / "goat", root / "JPEGImages" / "480p" / "goat"
    if case == "missing mask":
        (annots / "00002.png").unlink()
        return "sequence goat: 4 frames in JPEGImages/480p but 3 masks in Annotations/480p (no mask for frame 00002.jpg)"
    if case == "extra frame":
        Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(frames / "00004.jpg")
        return "sequence goat: 5 frames in JPEGImages/480p but 4 masks in Annotations/480p (no mask for frame 00004.jpg)"
    if case == "extra mask":
        Image.fromarray(np.zeros((40, 56), np.uint8)).save(annots / "00009.png")
        return "sequence goat: 4 frames in JPEGImages/480p but 5 masks in Annotations/480p (mask 00009.png has no frame)"
    if case == "size mismatch":
        Image.fromarray(np.zeros((40, 50), np.uint8)).save(annots / "00001.png")
        return "sequence goat: frame 00001.jpg is 56x40 but its mask is 50x40"
    if case == "empty sequence":
        for f in frames.iterdir():
            f.unlink()
        return "sequence goat: no frames in"
    if case == "corrupt frame":
        (frames / "00003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
        return "sequence goat: cannot read frame 00003.jpg"
    if case == "truncated mask":
        data = (annots / "00001.png").read_bytes()
        (annots / "00001.png").write_bytes(data[: len(data) // 2])
        return "sequence goat: cannot read mask 00001.png"
    if case == "rgb mask":
        Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(annots / "00000.png")
        return "sequence goat: mask 00000.png has mode RGB; DAVIS masks are palette (P) or grayscale (L) PNGs"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing mask", "extra frame", "extra mask", "size mismatch", "empty sequence",
                                  "corrupt frame", "truncated mask", "rgb mask"])
def test_bad_sequences_are_one_line_errors_naming_the_sequence(tmp_path, case):
    from lightning_modules.evaluation.config import BenchmarkConfig
    from lightning_modules.evaluation.sources import EvalError, open_benchmark

    write_davis_sequence(tmp_path, "blackswan", *moving_square_video(T=3))
    write_davis_sequence(tmp_path, "goat", *moving_square_video(T=4))
    words = _break(tmp_path, case)
    with pytest.raises(CorruptSampleError) as err:
        list(open_source(str(tmp_path)))
    assert str(err.value).startswith(words) and "\n" not in str(err.value)
    # What `make eval` prints after "error: " (exit status 2: lightning_modules.cli).
    with pytest.raises(EvalError) as err:
        list(open_benchmark(BenchmarkConfig(name="davis", path=str(tmp_path))))
    assert str(err.value).startswith(f"benchmark davis: {words}") and err.value.exit_code == 2


def test_a_folder_without_the_layout_is_not_davis(tmp_path):
    (tmp_path / "JPEGImages" / "480p").mkdir(parents=True)  # no Annotations
    from datagen.formats import SourceError

    with pytest.raises(SourceError, match="cannot tell the format"):
        detect_format(str(tmp_path))
    (tmp_path / "Annotations" / "480p").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no DAVIS sequences"):
        open_source(str(tmp_path)).items
