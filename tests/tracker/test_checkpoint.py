"""load_tracker: official .pth layouts, Lightning .ckpt files, download by URL into a cache, clear errors."""
from __future__ import annotations

import time

import pytest
import torch
from safetensors.torch import load_file

from tracker import CheckpointError, CoTracker3Offline, CoTracker3Online, load_tracker
from tracker.checkpoint import VARIANTS, default_cache_dir, infer_arch, kind_of, tracker_metadata
from tracker.common.download import DownloadError, download

TINY = dict(hidden_size=32, num_heads=4, time_depth=2, space_depth=1, num_virtual_tracks=8, latent_dim=16,
            corr_levels=2, corr_radius=2, corr_hidden=32, corr_dim=16, encoder_dims=(8, 8, 16, 16),
            encoder_fuse_dim=16, model_resolution=(32, 48))


@pytest.fixture(scope="module")
def official_sd(cotracker3_fixtures):
    """The fixture weights as float32 tensors, per kind."""
    return {kind: {k: v.float() for k, v in load_file(cotracker3_fixtures / f"weights_{kind}.safetensors").items()}
            for kind in ("offline", "online")}


def _same_weights(model: torch.nn.Module, sd: dict) -> bool:
    own = model.state_dict()
    return own.keys() == sd.keys() and all(torch.equal(own[k], sd[k]) for k in sd)


def test_plain_official_pth(tmp_path, official_sd):
    path = tmp_path / "scaled_offline.pth"
    torch.save(official_sd["offline"], path)
    model = load_tracker("offline", path)
    assert type(model) is CoTracker3Offline and not model.training
    assert model.time_emb.shape == (1, 60, 1110)
    assert _same_weights(model, official_sd["offline"])


def test_wrapped_and_prefixed_pth(tmp_path, official_sd):
    path = tmp_path / "wrapped.pth"
    torch.save({"model": {"module." + k: v for k, v in official_sd["online"].items()}}, path)
    model = load_tracker("baseline_online", path)
    assert type(model) is CoTracker3Online and model.time_emb.shape == (1, 16, 1110)
    assert _same_weights(model, official_sd["online"])


def test_lightning_ckpt_with_saved_arch(tmp_path):
    torch.manual_seed(0)
    source = CoTracker3Online(window_len=8, **TINY)
    ckpt = {
        "state_dict": {"model." + k: v for k, v in source.state_dict().items()} | {"teacher.x": torch.zeros(1)},
        "hyper_parameters": {"model": {"arch": source.arch}},
    }
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    model = load_tracker("online", path)
    assert model.arch == source.arch and model.window_len == 8
    assert _same_weights(model, source.state_dict())


def test_lightning_ckpt_without_arch_infers_shapes(tmp_path):
    torch.manual_seed(0)
    arch = {**TINY, "num_heads": 8}  # heads cannot be inferred; the default (8) must divide the hidden size
    source = CoTracker3Offline(window_len=12, **arch)
    path = tmp_path / "epoch=0.ckpt"
    torch.save({"state_dict": {"model." + k: v for k, v in source.state_dict().items()}}, path)
    inferred = infer_arch(source.state_dict())
    assert inferred["corr_levels"] == 2 and inferred["corr_radius"] == 2 and inferred["window_len"] == 12
    model = load_tracker("offline", path)
    assert _same_weights(model, source.state_dict())


def test_download_via_url_into_cache(tmp_path, official_sd, monkeypatch):
    source = tmp_path / "remote" / "scaled_online.pth"
    source.parent.mkdir()
    torch.save(official_sd["online"], source)
    cache = tmp_path / "cache"
    model = load_tracker("online", cache_dir=cache, url=source.as_uri())
    assert _same_weights(model, official_sd["online"])
    assert sorted(p.name for p in cache.iterdir()) == ["scaled_online.pth"]  # no temporary file left behind
    source.unlink()  # second call is served from the cache
    assert _same_weights(load_tracker("online", cache_dir=cache, url=source.as_uri()), official_sd["online"])
    monkeypatch.setenv("TRACKFORGE_CACHE", str(cache))
    assert default_cache_dir() == cache
    assert _same_weights(load_tracker("online"), official_sd["online"])


def test_failed_download_leaves_no_partial_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(OSError):
        load_tracker("offline", cache_dir=cache, url=(tmp_path / "missing.pth").as_uri())
    assert not cache.exists() or not any(cache.iterdir())


@pytest.fixture
def http_server():
    """A real local HTTP server: /whole sends 2,000 bytes, /cut announces 2,000 and closes after 500, /stall
    announces 2,000, sends 500 and then nothing for 5 s. Yields its base URL."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2000")
            self.end_headers()
            self.wfile.write(b"x" * (2000 if self.path == "/whole" else 500))
            self.wfile.flush()
            if self.path == "/stall":
                time.sleep(5)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_that_is_cut_short_or_stalls_fails_in_one_line(tmp_path, http_server):
    """A connection closed before the announced length, or one that stops sending, is a one-line DownloadError
    naming the URL within the stall bound (not a truncated file kept, not a hang); nothing is left behind."""
    dest = tmp_path / "cache" / "scaled_online.pth"
    assert download(f"{http_server}/whole", dest, progress=False).read_bytes() == b"x" * 2000
    dest.unlink()
    with pytest.raises(DownloadError, match=r"/cut was cut short \(1500 bytes missing\)"):
        download(f"{http_server}/cut", dest, progress=False)
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"/stall stalled: nothing received for 0.5 s") as err:
        download(f"{http_server}/stall", dest, progress=False, stall_s=0.5)
    assert time.monotonic() - t0 < 4 and "\n" not in str(err.value)
    assert not any((tmp_path / "cache").iterdir())
    with pytest.raises(DownloadError, match="cannot download http://127.0.0.1:9/x"):  # nothing listens on port 9
        download("http://127.0.0.1:9/x", dest, progress=False)


def test_download_progress_bar_is_closed_when_the_download_fails(tmp_path, http_server, capsys):
    """The bar's line is finished before the error reaches the user (not left open until the error is collected,
    to be redrawn after the message)."""
    pytest.importorskip("tqdm")
    with pytest.raises(DownloadError, match="stalled") as err:
        download(f"{http_server}/stall", tmp_path / "x.pth", stall_s=0.5)
    bar = capsys.readouterr().err
    assert "downloading x.pth" in bar and bar.endswith("\n"), (bar, err.value)


def test_key_errors_name_the_keys(tmp_path, official_sd):
    sd = dict(official_sd["offline"])
    del sd["corr_mlp.fc2.bias"]
    sd["extra.weight"] = torch.zeros(3)
    sd["updateformer.flow_head.weight"] = torch.zeros(3, 384)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as err:
        load_tracker("offline", path)
    msg = str(err.value)
    assert "missing keys (1): corr_mlp.fc2.bias" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "updateformer.flow_head.weight: checkpoint (3, 384) vs model (2, 384)" in msg


def test_online_weights_into_offline_variant_is_a_shape_error(tmp_path, official_sd):
    path = tmp_path / "online.pth"
    torch.save(official_sd["online"], path)
    with pytest.raises(CheckpointError, match=r"time_emb: checkpoint \(1, 16, 1110\) vs model \(1, 60, 1110\)"):
        load_tracker("offline", path)


def test_unknown_variant_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown tracker variant 'cotracker9'"):
        load_tracker("cotracker9", tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError):
        load_tracker("offline", tmp_path / "nope.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_tracker("offline", tmp_path / "garbage.pth")


class _Payload:
    """Unpickling this with plain pickle (torch.load(weights_only=False)) would run `touch marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_malicious_checkpoint_is_refused_and_not_run(tmp_path, zipped):
    """A real torch.save file whose unpickling would create a file: refused in one line, nothing created."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}, "hyper_parameters": {"config": _Payload(marker)}}, path,
               _use_new_zipfile_serialization=zipped)
    with pytest.raises(CheckpointError, match=r"refused to load checkpoint .*evil.ckpt: it refers to posix.system") \
            as err:
        load_tracker(None, path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_random_bytes_and_plain_pickles_give_one_line(tmp_path):
    import os
    import pickle

    junk = tmp_path / "junk.pth"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint") as err:
        load_tracker("online", junk)
    assert "\n" not in str(err.value) and str(junk) in str(err.value)
    pkl = tmp_path / "dict.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_tracker(None, pkl)


def test_cli_reports_bad_checkpoints_in_one_line(tmp_path, shared_dir):
    """`python -m tracker track --checkpoint` on random bytes and on a payload: one line, exit 2, no file made."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    clip = shared_dir / "data" / "bear.mp4"
    if not clip.is_file():
        pytest.skip(f"demo clip not found at {clip}")
    marker = tmp_path / "pwned"
    evil, junk = tmp_path / "evil.ckpt", tmp_path / "junk.ckpt"
    torch.save({"state_dict": _Payload(marker)}, evil)
    junk.write_bytes(os.urandom(2048))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for path, words in ((evil, "refused to load"), (junk, "not a PyTorch checkpoint")):
        proc = subprocess.run([sys.executable, "-m", "tracker", "track", str(clip), "--max-frames", "2",
                               "--checkpoint", str(path), "--out", str(tmp_path / "t.npz")],
                              env=env, capture_output=True, text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr
        assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "t.npz").exists()


def test_model_kind_is_the_one_online_offline_test():
    """Variants, checkpoint metadata and evaluation all read the model class's `kind`."""
    for variant, (cls, _, _) in VARIANTS.items():
        assert kind_of(variant) == cls.kind == ("online" if "online" in variant else "offline")
    with torch.device("meta"):
        models = CoTracker3Offline(window_len=8, **TINY), CoTracker3Online(window_len=8, **TINY)
    assert [tracker_metadata(m, (32, 48))["variant"] for m in models] == ["offline", "online"]


@pytest.mark.parametrize("cls", [CoTracker3Online, CoTracker3Offline])
def test_initial_logits_set_where_tracks_start_and_travel_with_the_checkpoint(tmp_path, cls):
    """A fresh model's heads add almost nothing, so its outputs sit at the starting logits: 0.5 by default (the
    official start), sigmoid(start) when set; a TrackForge checkpoint records the start and reloads it."""
    g = torch.Generator().manual_seed(0)
    video = torch.rand(1, 8, 3, 32, 48, generator=g) * 255
    queries = torch.tensor([[[0.0, 10.0, 12.0], [2.0, 30.0, 20.0]]])
    torch.manual_seed(0)
    plain = cls(window_len=8, **TINY).eval()
    torch.manual_seed(0)
    primed = cls(window_len=8, **TINY, initial_logits=(2.0, -1.0)).eval()
    with torch.no_grad():
        a, b = plain(video, queries, iters=2), primed(video, queries, iters=2)
    assert torch.allclose(a.vis, torch.full_like(a.vis, 0.5), atol=0.05)
    assert torch.allclose(b.vis, torch.full_like(b.vis, torch.sigmoid(torch.tensor(2.0)).item()), atol=0.05)
    assert torch.allclose(b.conf, torch.full_like(b.conf, torch.sigmoid(torch.tensor(-1.0)).item()), atol=0.05)
    assert torch.allclose(a.coords, b.coords, atol=0.1)  # the logits are token inputs too: positions move a little
    path = tmp_path / "primed.ckpt"
    torch.save({"state_dict": {"model." + k: v for k, v in primed.state_dict().items()},
                "hyper_parameters": {"model": {"arch": primed.arch}}}, path)
    loaded = load_tracker(cls.kind, path)
    assert loaded.arch["initial_logits"] == [2.0, -1.0]
    with torch.no_grad():
        assert torch.allclose(loaded(video, queries, iters=2).vis, b.vis, atol=1e-5)
    with pytest.raises(ValueError, match="initial_logits"):
        cls(window_len=8, **TINY, initial_logits=(1.0,))
