"""The generator under faults, with real processes and real SIGKILLs: scenes killed from outside, a dying warm
server, generators killed between shard rename steps, two generators on one folder, a warm server that cannot
start, a GPU that is not there. Every run renders the same tiny data set (4 scenes of 32x32, 3 frames, 1 spp,
2 scenes per shard) and must end with shards byte-identical to one uninterrupted run."""
from __future__ import annotations

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datagen.config import load_data_config
from datagen.pipeline.generate import FAULT_ENV, generate_dataset
from datagen.pipeline.layout import derive_seed
from datagen.formats.shard_io import iter_tar_samples
from datagen.formats.shards import read_shards
from tests.conftest import fill_disk, procs_mentioning, small_disk

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "data" / "tiny.yaml"
OVERRIDES = ["generate.num_scenes=4", "generate.scenes_per_shard=2", "generate.max_retries=2",
             "scene.num_humans=0", "scene.num_animals=0", "scene.resolution=[32,32]", "scene.num_frames=3",
             "scene.samples_per_pixel=1", "scene.num_tracks=32", "scene.num_static_objects=[1,1]",
             "scene.num_tossed_objects=[1,1]", "scene.render_timeout_s=180"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run (warm scene server, one worker, in this process)."""
    out = tmp_path_factory.mktemp("reference")
    report = generate_dataset(load_data_config(TINY, OVERRIDES), out, workers=1, progress=False)
    assert report.shards_written == [0, 1] and not report.retries and report.scene_process == "warm"
    return out


def _generate(out: Path, *args: str, env: dict | None = None, overrides: list[str] = (),
              log_dir: Path | None = None) -> subprocess.Popen:
    """`python -m datagen generate` on the test data set, one worker; its stdout/stderr go to files."""
    log_dir = log_dir or out.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{out.name}-{time.monotonic_ns()}"
    stdout, stderr = open(log_dir / f"{tag}.stdout", "w"), open(log_dir / f"{tag}.stderr", "w")
    proc = subprocess.Popen([sys.executable, "-m", "datagen", "generate", "--config", str(TINY), "--out", str(out),
                             "--workers", "1", "--no-progress", *args, *OVERRIDES, *overrides],
                            cwd=REPO, stdout=stdout, stderr=stderr, env={**os.environ, **(env or {})})
    proc.stdout_path, proc.stderr_path = Path(stdout.name), Path(stderr.name)
    return proc


def _wait_for(path: Path, pattern: str, proc: subprocess.Popen, start: int = 0, count: int = 1,
              timeout: float = 300) -> re.Match:
    """The `count`-th match of `pattern` in the log after byte `start` (the log is appended to by each run)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace")[start:] if path.is_file() else ""
        matches = list(re.finditer(pattern, text))
        if len(matches) >= count:
            return matches[count - 1]
        assert proc.poll() is None, f"generator exited ({proc.returncode}) before /{pattern}/:\n{text}"
        assert time.monotonic() < deadline, f"no /{pattern}/ after {timeout}s:\n{text}"
        time.sleep(0.05)


def _assert_no_scene_processes(out: Path) -> None:
    """Warm server, its forked scenes and cold scene processes all name the output folder on their command line."""
    deadline = time.monotonic() + 15
    while procs_mentioning(str(out)):
        assert time.monotonic() < deadline, f"processes outlived their generator: {procs_mentioning(str(out))}"
        time.sleep(0.1)


def _server_pid(out: Path, generator: int) -> int:
    for d in Path("/proc").iterdir():
        try:
            cmd = (d / "cmdline").read_bytes()
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if b"datagen.pipeline.server" in cmd and str(out).encode() in cmd and ppid == generator:
            return int(d.name)
    raise AssertionError("no warm scene server found")


def _assert_same_shards(out: Path, reference: Path, shards=(0, 1)) -> None:
    for s in shards:
        name = f"shard-{s:06d}.tar"
        assert (out / name).read_bytes() == (reference / name).read_bytes(), f"{name} differs from the reference"


def _log_size(path: Path) -> int:
    return len(path.read_text(errors="replace")) if path.is_file() else 0


def test_warm_scenes_skip_the_imports_and_match_cold_ones(tmp_path, reference):
    """A warm server that cannot start (a module it cannot import) falls back to cold processes with a warning;
    those render byte-identical shards, and they pay the imports that warm scenes do not."""
    out = tmp_path / "data"
    proc = _generate(out, "--task-index", "0", "--num-tasks", "2",
                     overrides=["generate.warm_imports=[no_such_module_for_the_test]"])
    assert proc.wait(timeout=600) == 0, proc.stderr_path.read_text()
    log = (out / "generate-task0000.log").read_text()
    assert "could not import generate.warm_imports: ModuleNotFoundError" in log and "fresh processes" in log
    _assert_same_shards(out, reference, shards=(0,))
    cold = [json.loads(ln) for ln in (out / "scene_timings-task0000.jsonl").read_text().splitlines()]
    warm = [json.loads(ln) for ln in (reference / "scene_timings.jsonl").read_text().splitlines()]
    assert {r["scene_process"] for r in cold} == {"cold"} and {r["scene_process"] for r in warm} == {"warm"}
    heavy = {"bpy", "kubric", "tensorflow", "pybullet"}
    assert all(heavy <= set(r["late_imports"]) for r in cold)  # each cold scene imported them itself
    assert not any(heavy & set(r["late_imports"]) for r in warm)  # warm scenes found them imported (bpy: by the
    # forked child before its job, see test_warm_server_refuses_to_import_blender)
    for sample in read_shards(str(reference / "shard-*.tar")):
        assert not {"timings", "render_threads"} & set(sample.meta)  # run facts live in scene_timings.jsonl
        assert sample.meta["render_device"] == "CPU"
    # one warm process rendered all four reference scenes (generate.scenes_per_process 8), one after the other:
    # scene 1 followed scene 0 in the same process, and shard 0 is byte-identical to fresh processes' (above)
    assert len({r["pid"] for r in warm}) == 1


def test_warm_processes_retire_after_their_scenes(tmp_path, reference):
    """generate.scenes_per_process=3: the first process renders scenes 0-2 and exits, the spare renders scene 3;
    the shards are byte-identical to the reference's (all four scenes in one process)."""
    out = tmp_path / "data"
    report = generate_dataset(load_data_config(TINY, [*OVERRIDES, "generate.scenes_per_process=3"]), out,
                              workers=1, progress=False)
    assert report.shards_written == [0, 1] and not report.retries
    _assert_same_shards(out, reference)
    pids = [json.loads(ln)["pid"] for ln in (out / "scene_timings.jsonl").read_text().splitlines()]
    assert pids[0] == pids[1] == pids[2] != pids[3]
    _assert_no_scene_processes(out)



@pytest.mark.parametrize("extra,event", [([], "ready"), (["bpy"], "error")])
def test_warm_server_refuses_to_import_blender(extra, event):
    """The default warm imports leave Blender out (the server reports ready); a warm import that pulls bpy in is an
    error event, because a scene forked after `import bpy` would render on one thread (TBB's pool is not copied)."""
    from datagen.config import DEFAULT_WARM_IMPORTS

    argv = [sys.executable, "-m", "datagen.pipeline.server", "--parent-pid", str(os.getpid())]
    for spec in [*DEFAULT_WARM_IMPORTS, *extra]:
        argv += ["--import", spec]
    proc = subprocess.run(argv, cwd=REPO, input="", capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    ev = json.loads(proc.stdout.splitlines()[0])
    assert ev["event"] == event, (ev, proc.stderr[-2000:])
    if event == "error":
        assert "bpy was imported" in ev["message"] and "one thread" in ev["message"], ev


def test_scene_killed_from_outside_is_rendered_again_with_its_seed(tmp_path, reference):
    """SIGKILL of a scene process (what the OOM killer does) is retried with the SAME seed, so the data set does
    not change, and the logged reason is the kill, not some unrelated line of the scene's log. Nothing is left in
    the system's temp folder: Blender's session folders of scene processes (the killed one's too) go with the run."""
    out = tmp_path / "data"
    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    # The temp folders other generators left: killed ones (their pid gone) are removed once an hour old; a live
    # generator's and a recent one are kept.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    for name in (f"{gone.pid}-old", f"{gone.pid}-new", f"{os.getpid()}-old"):
        folder = system_tmp / f"trackforge-scenes-{name}"
        (folder / "blender_x").mkdir(parents=True)
        if name.endswith("-old"):
            os.utime(folder, (time.time() - 7200, time.time() - 7200))
    proc = _generate(out, "--task-index", "0", "--num-tasks", "2", env={"TMPDIR": str(system_tmp)})
    log_path = out / "generate-task0000.log"
    child = int(_wait_for(log_path, r"scene 0 attempt 0 seed \d+: started \(pid (\d+)", proc).group(1))
    os.kill(child, signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, proc.stderr_path.read_text()
    log = log_path.read_text()
    (line,) = [ln for ln in log.splitlines() if "failed:" in ln]
    assert f"scene 0 attempt 0 (seed {derive_seed(0, 0, 0)}) failed: killed by SIGKILL from outside the generator" \
        in line and "peak memory" in line and line.endswith("retrying the same seed"), line
    assert "tensorflow" not in line.lower() and "I0000" not in line
    assert "1 retry" in proc.stdout_path.read_text()
    assert [s.meta["attempt"] for s in read_shards(str(out / "shard-000000.tar"))] == [0, 0]
    _assert_same_shards(out, reference, shards=(0,))
    assert sorted(p.name for p in system_tmp.iterdir()) == sorted([f"trackforge-scenes-{gone.pid}-new",
                                                                  f"trackforge-scenes-{os.getpid()}-old"])


def test_two_generators_on_one_folder(tmp_path, reference):
    """A second generator for shards that one holds stops with one line naming the holder; a generator for the
    other shards (a SLURM array task) runs side by side; the result is the uninterrupted data set."""
    out = tmp_path / "data"
    first = _generate(out, "--task-index", "0", "--num-tasks", "2")
    _wait_for(out / "generate-task0000.log", r"scene 0 attempt 0 seed \d+: started", first)
    second = subprocess.run([sys.executable, "-m", "datagen", "generate", "--config", str(TINY), "--out", str(out),
                             "--task-index", "0", "--num-tasks", "2", *OVERRIDES], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert second.stderr.startswith(f"error: {out / 'shard-000000.tar'} is being generated by pid {first.pid} on "
                                    f"host {socket.gethostname()} since "), second.stderr
    other_task = _generate(out, "--task-index", "1", "--num-tasks", "2")
    assert first.wait(timeout=600) == 0, first.stderr_path.read_text()
    assert other_task.wait(timeout=600) == 0, other_task.stderr_path.read_text()
    assert not (out / "generate.log").exists()  # the refused generator left no trace
    _assert_same_shards(out, reference)


def test_killed_three_times_at_random_points_then_identical(tmp_path, reference):
    """Fault injection: three runs in a row die (a scene process, the warm server, the generator itself from
    outside and at its own rename steps); a fourth run finishes; shards equal the uninterrupted run's bytes."""
    rng = random.Random(2024)
    out = tmp_path / "data"
    log_path = out / "generate.log"

    # Run 1: scene 0's process is SIGKILLed mid-render (retried with its seed), then the generator dies between
    # writing shard 0's temp file and renaming it.
    proc = _generate(out, env={FAULT_ENV: "shard_tmp_written"})
    child = int(_wait_for(log_path, r"scene 0 attempt 0 seed \d+: started \(pid (\d+)", proc).group(1))
    time.sleep(rng.uniform(0.0, 0.5))
    os.kill(child, signal.SIGKILL)
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr_path.read_text()
    _assert_no_scene_processes(out)
    assert "killed by SIGKILL from outside the generator" in log_path.read_text()
    assert list(out.glob("shard-000000.tar.tmp-*")) and not list(out.glob("shard-*.tar"))

    # Run 2: assembles shard 0 from the kept scenes; the warm server is SIGKILLed while scene 2 renders (a new
    # server renders it again, same seed); then the generator is SIGKILLed from outside during that render.
    start = _log_size(log_path)
    proc = _generate(out)
    _wait_for(log_path, r"scene 2 attempt 0 seed \d+: started", proc, start)
    os.kill(_server_pid(out, proc.pid), signal.SIGKILL)
    _wait_for(log_path, r"scene 2 attempt 0 .* failed: the warm scene server died.*retrying the same seed", proc, start)
    _wait_for(log_path, r"scene 2 attempt 0 seed \d+: started", proc, start, count=2)
    time.sleep(rng.uniform(0.0, 0.5))
    proc.kill()
    proc.wait()
    _assert_no_scene_processes(out)
    assert sorted(p.name for p in out.glob("shard-*")) == ["shard-000000.tar"]
    assert not list(out.glob("*.tmp-*"))

    # Run 3: renders scenes 2 and 3, and dies right after renaming shard 1 into place or after deleting the first
    # of its scene tars (seeded choice).
    point = rng.choice(["shard_renamed", "scene_tar_deleted"])
    proc = _generate(out, env={FAULT_ENV: point})
    assert proc.wait(timeout=600) == -signal.SIGKILL, proc.stderr_path.read_text()
    _assert_no_scene_processes(out)
    assert (out / "shard-000001.tar").is_file() and list((out / ".work" / "scenes").glob("scene-*.tar"))

    # Run 4: nothing left to render; leftovers are cleaned up.
    proc = _generate(out)
    assert proc.wait(timeout=600) == 0, proc.stderr_path.read_text()
    assert "0 shard(s) written, 2 already done, 0 scene(s) rendered" in proc.stdout_path.read_text()
    assert not list((out / ".work" / "scenes").iterdir()) and not list(out.glob("*.tmp-*"))
    _assert_same_shards(out, reference)
    for shard in ("shard-000000.tar", "shard-000001.tar"):
        assert [r["__key__"] for r in iter_tar_samples(out / shard)] == \
            [r["__key__"] for r in iter_tar_samples(reference / shard)]


# What the generator logs as it goes: a kill after a random one of these lands anywhere in a run.
EVENTS = r"scene \d+ attempt \d+ seed \d+: (started|done)|shard \d+ written"


# Events 6 and 9: middle and late (test_killed_three_times_at_random_points_then_identical kills early ones too).
@pytest.mark.parametrize(("sig", "seed"), [(signal.SIGTERM, 16), (signal.SIGKILL, 29)],
                         ids=["SIGTERM-16", "SIGKILL-29"])
def test_generator_killed_at_a_random_moment_then_identical(tmp_path, reference, sig, seed):
    """`datagen generate` gets `sig` from outside (SIGTERM: Python's default action, no clean-up either) at a seeded
    random moment: up to a second after a random one of its log events (a scene started or done, a shard written).
    Its scene processes die with it; the rerun ends with the uninterrupted run's shards, byte for byte, and leaves
    no temporary file or scene tar behind."""
    rng = random.Random(seed)
    out = tmp_path / "data"
    proc = _generate(out)
    nth = rng.randint(1, 10)  # 4 scenes started and done, 2 shards written
    _wait_for(out / "generate.log", EVENTS, proc, count=nth)
    time.sleep(rng.uniform(0.0, 1.0))
    proc.send_signal(sig)
    code = proc.wait(timeout=120)
    assert code in (-sig, 0), proc.stderr_path.read_text()
    _assert_no_scene_processes(out)
    done_before = sorted(p.name for p in out.glob("shard-*.tar"))
    proc = _generate(out)
    assert proc.wait(timeout=600) == 0, proc.stderr_path.read_text()
    _assert_no_scene_processes(out)
    _assert_same_shards(out, reference)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert not list((out / ".work" / "scenes").iterdir())
    print(f"{signal.Signals(sig).name} after event {nth} (exit {code}, shards done: {done_before}): rerun identical")


def test_gpu_requested_without_gpu_stops_at_once(tmp_path):
    """scene.render_device=gpu where Cycles finds none: one line, no retries (every scene would fail alike)."""
    probe = subprocess.run([sys.executable, "-m", "datagen.scene.cycles_device"], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
    if probe.returncode == 0:
        pytest.skip(f"this machine has a GPU: {probe.stdout.strip()}")
    out = tmp_path / "data"
    proc = _generate(out, overrides=["generate.num_scenes=1", "scene.render_device=gpu"])
    assert proc.wait(timeout=600) == 1
    err = proc.stderr_path.read_text().strip().splitlines()
    assert err == ["error: scene 0: scene.render_device=gpu but Cycles finds no GPU (tried OPTIX, CUDA, HIP, ONEAPI, "
                   "METAL); use scene.render_device=auto or cpu"], err
    assert "retrying" not in (out / "generate.log").read_text()


def test_disk_full_stops_with_one_line_and_resumes(tmp_path, reference):
    """The disk fills up while a scene renders: one line, no retry with other seeds (the seed is not to blame),
    nothing half-written; after freeing space the rerun finishes the same data set."""
    with small_disk(tmp_path / "small_disk") as disk:
        out = disk / "data"
        try:
            _disk_full_run(out, disk, tmp_path, reference)
        finally:
            _assert_no_scene_processes(out)


def _disk_full_run(out: Path, disk: Path, tmp_path: Path, reference: Path) -> None:
    proc = _generate(out, log_dir=tmp_path)
    _wait_for(out / "generate.log", r"scene 0 attempt 0 seed \d+: done", proc)
    filler = fill_disk(disk)
    assert proc.wait(timeout=600) == 1
    err = proc.stderr_path.read_text().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "disk full" in err[0], err
    _assert_no_scene_processes(out)
    assert not list(out.glob("*.tmp-*")) and not list((out / ".work" / "scenes").glob("*.tmp-*"))
    filler.unlink()
    proc = _generate(out, log_dir=tmp_path)
    assert proc.wait(timeout=600) == 0, proc.stderr_path.read_text()
    assert "retrying with seed" not in (out / "generate.log").read_text()
    _assert_same_shards(out, reference)
