"""Offline HDRI and texture catalog (datagen.scene.assets): Blender's HDRIs, @pmndrs/assets' tarball, user folders."""
from __future__ import annotations

import base64
import io
import shutil
import tarfile

import pytest

from datagen.scene import assets


def test_blender_hdris_are_found():
    paths = assets.blender_hdri_paths()
    if not paths:
        pytest.skip("bpy is not installed")
    names = {p.rsplit("/", 1)[-1] for p in paths}
    assert {"city.exr", "forest.exr", "interior.exr", "sunset.exr"} <= names and len(names) == 8


def _npm_tarball(path, exr_bytes: bytes, names=("park", "lobby")) -> None:
    """A tarball laid out like `npm pack @pmndrs/assets`: package/hdri/<name>.exr.js holding a base64 data URI."""
    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            js = f"export default 'data:application/exr;base64,{base64.b64encode(exr_bytes).decode()}'\n".encode()
            info = tarfile.TarInfo(f"package/hdri/{name}.exr.js")
            info.size = len(js)
            tar.addfile(info, io.BytesIO(js))
        other = b"export default 'x'"
        info = tarfile.TarInfo("package/matcaps/64/x.png.js")
        info.size = len(other)
        tar.addfile(info, io.BytesIO(other))


def test_pmndrs_tarball_is_decoded_once_into_the_cache(tmp_path):
    blender = assets.blender_hdri_paths()
    if not blender:
        pytest.skip("bpy is not installed (its EXRs stand in for the npm package's)")
    exr = open(blender[0], "rb").read()
    cache = tmp_path / "cache"
    assert assets.pmndrs_hdri_paths(cache) == []  # no tarball: nothing, no error
    (cache / "npm").mkdir(parents=True)
    _npm_tarball(cache / "npm" / "pmndrs-assets-1.7.0.tgz", exr)
    paths = assets.pmndrs_hdri_paths(cache)
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["lobby.exr", "park.exr"]
    assert all(open(p, "rb").read() == exr for p in paths)
    (cache / "npm" / "pmndrs-assets-1.7.0.tgz").unlink()  # decoded files stay usable without the tarball
    assert assets.pmndrs_hdri_paths(cache) == paths
    assert assets.hdri_paths([], cache)[-2:] == paths
    # a payload that is not an EXR is refused
    bad = tmp_path / "bad"
    (bad / "npm").mkdir(parents=True)
    _npm_tarball(bad / "npm" / "pmndrs-assets-1.7.0.tgz", b"not an exr")
    with pytest.raises(ValueError, match="EXR"):
        assets.pmndrs_hdri_paths(bad)


def test_user_folders_of_hdris_and_textures(tmp_path):
    src = assets.image_texture_paths()[0]
    textures = tmp_path / "textures"
    textures.mkdir()
    shutil.copy(src, textures / "a.png")
    (textures / "notes.txt").write_text("ignored")
    hdris = tmp_path / "hdris"
    hdris.mkdir()
    (hdris / "sky.hdr").write_bytes(b"#?RADIANCE\n")
    (hdris / "readme.md").write_text("ignored")
    assert assets.image_texture_paths([str(textures)])[-1] == str(textures / "a.png")
    assert assets.hdri_paths([str(hdris)], tmp_path / "cache")[-1] == str(hdris / "sky.hdr")
    with pytest.raises(FileNotFoundError, match="holds no"):
        assets.hdri_paths([str(textures)], tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        assets.image_texture_paths([str(tmp_path / "missing")])
