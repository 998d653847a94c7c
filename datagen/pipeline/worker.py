"""One scene attempt in its own process: render, encode and write the scene's one-sample tar.

Two ways in, one body (`run_scene_job`):
  * cold: `python -m datagen.pipeline.worker JOB.json`, a fresh interpreter per scene (pays ~5-15 s of imports);
  * warm: a child forked by `datagen.pipeline.server`, which imported Kubric/TensorFlow once before (the child imports
    its own bpy right after the fork).
Either way the scene gets a process of its own, so Blender state never leaks from one scene into the next.

The job file (written by datagen.pipeline.generate) names the scene, its seed, the output tar and a scratch folder. The
process writes the tar atomically and prints one RESULT line (timings and other facts about this run) to its
log. Failures that no retry can fix (a render device that does not exist here, a full disk) print a FATAL line
and exit with EXIT_FATAL: the generator stops instead of moving on to other seeds.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from tracker.common.errors import one_line

RESULT_PREFIX = "TRACKFORGE_SCENE_RESULT "
FATAL_PREFIX = "TRACKFORGE_SCENE_FATAL "
EXIT_FATAL = 78  # sysexits EX_CONFIG: retrying cannot help
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def set_parent_death_signal(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent dies (a killed generator must not leave renders running)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)


def kill_process_group(pid: int) -> None:
    """SIGKILL the process group of `pid` (a scene process or warm server, each the leader of its own group), or
    `pid` alone when it has not called setsid yet. Only for children not reaped yet: their pid cannot be reused."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _top_level_modules() -> set[str]:
    return {name.partition(".")[0] for name in list(sys.modules)}


def run_scene_job(job_path: str | os.PathLike) -> int:
    """Render the scene described by JOB.json; returns the exit code (0, or EXIT_FATAL). Other failures raise."""
    try:
        return _run_scene_job(job_path)
    except OSError as err:
        if err.errno not in DISK_FULL_ERRNOS:
            raise
        _fatal(f"disk full: {err}")
        return EXIT_FATAL


def _fatal(message: str) -> None:
    try:
        print(FATAL_PREFIX + one_line(message), flush=True)
    except OSError:  # the log is on the full disk too: the exit code alone tells the generator
        pass


def _run_scene_job(job_path: str | os.PathLike) -> int:
    t_start = time.perf_counter()
    modules_before = _top_level_modules()
    job = json.loads(Path(job_path).read_text())
    if job.get("inject_failure"):
        raise RuntimeError(f"injected failure for scene {job['scene_index']} attempt {job['attempt']} "
                           "(generate.debug_fail_scenes)")
    from omegaconf import OmegaConf

    from datagen.scene.cycles_device import RenderDeviceError
    from datagen.config.scene import SceneConfig

    scene_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SceneConfig), job["scene"]))
    from datagen.scene.render import render_scene  # imports Kubric/bpy lazily: only ever inside a scene process
    from datagen.formats.shard_io import encode_sample, write_tar

    t_import = time.perf_counter()
    workdir = Path(job["workdir"])
    shutil.rmtree(workdir, ignore_errors=True)  # leftovers of a killed try of this scene must not mix in
    workdir.mkdir(parents=True)
    try:
        rendered = render_scene(scene_cfg, int(job["seed"]), workdir, threads=job.get("threads"),
                                gpu_slot=job.get("gpu_slot"))
    except RenderDeviceError as err:
        _fatal(str(err))
        return EXIT_FATAL
    sample, run = rendered.sample, rendered.run  # content for the shard; run facts for scene_timings.jsonl
    sample.meta.update(scene_index=job["scene_index"], attempt=job["attempt"], seed=job["seed"],
                       base_seed=job["base_seed"])
    t_render = time.perf_counter()
    raw = encode_sample(sample, job["key"], job["codec"])
    t_encode = time.perf_counter()
    write_tar(job["out"], [raw])
    t_done = time.perf_counter()
    timings = dict(run["timings"])
    timings.update(
        import_s=t_import - t_start,  # interpreter start is measured by the parent (process_s)
        scene_total_s=t_render - t_import,
        encode_s=t_encode - t_render,
        write_s=t_done - t_render,  # encode + tar write
    )
    shutil.rmtree(workdir, ignore_errors=True)
    result = {"scene_index": job["scene_index"], "timings": timings,
              "render_threads": run["render_threads"], "render_device": sample.meta.get("render_device"),
              # modules the scene imported itself: candidates for generate.warm_imports
              "late_imports": sorted(_top_level_modules() - modules_before)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Cold entry point: `python -m datagen.pipeline.worker JOB.json` (tracebacks go to the scene's log)."""
    import faulthandler

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m datagen.pipeline.worker JOB.json", file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text())
    set_parent_death_signal(int(job["parent_pid"]))
    faulthandler.enable()  # a crash (SIGSEGV in Blender) leaves its Python stack in the log
    return run_scene_job(argv[0])


if __name__ == "__main__":
    sys.exit(main())
