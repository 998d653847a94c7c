"""Render a data set into WebDataset shards: one fresh process per scene, retries, resume, task slicing.

Layout of `out_dir` (see docs/datagen_pipeline.md):
  dataset.json                 resolved config, content hash, shard list (written before any rendering)
  generate.log                 one line per scene attempt (retries and failures included)
  shard-000000.tar ...         finished shards (written atomically; a shard file is always complete)
  .work/scenes/scene-*.tar     finished scenes of shards that are not finished yet (kept across crashes)
  .work/logs/scene-*-aK.log    stdout/stderr of each scene process (attempt K)
Scene i is rendered with seed derive_seed(base_seed, i, attempt); attempt 0 first, a new attempt per retry.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from datagen.config import DataConfig, config_from_dict

RESULT_PREFIX = "TRACKFORGE_SCENE_RESULT "
_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)(:|$)")
DATASET_FILE = "dataset.json"
WORK_DIR = ".work"


class GenerationError(RuntimeError):
    """Generation could not finish (scenes failed after all retries, or out_dir holds another data set)."""


# ---------------------------------------------------------------------------------------------- naming
def derive_seed(base_seed: int, scene_index: int, attempt: int) -> int:
    """Deterministic 31-bit seed for (base_seed, scene_index, attempt); attempts give unrelated seeds."""
    import numpy as np

    state = np.random.SeedSequence([base_seed, scene_index, attempt]).generate_state(1, np.uint32)[0]
    return int(state) & 0x7FFFFFFF


def shard_name(shard: int) -> str:
    return f"shard-{shard:06d}.tar"


def scene_key(scene_index: int) -> str:
    return f"scene-{scene_index:06d}"


def shard_scenes(cfg: DataConfig, shard: int) -> range:
    """Scene indices stored in shard `shard` (the last shard may be short)."""
    g = cfg.generate
    return range(shard * g.scenes_per_shard, min((shard + 1) * g.scenes_per_shard, g.num_scenes))


def task_shards(num_shards: int, task_index: int, num_tasks: int) -> list[int]:
    """Shards of one task: shard s belongs to task (s * num_tasks) // num_shards (contiguous blocks)."""
    if num_tasks < 1 or not 0 <= task_index < num_tasks:
        raise ValueError(f"task index {task_index} out of range for {num_tasks} task(s)")
    return [s for s in range(num_shards) if (s * num_tasks) // num_shards == task_index]


def effective_timeout(cfg: DataConfig) -> float:
    t = cfg.generate.timeout_s
    return float(t if t is not None else cfg.scene.render_timeout_s)


# ---------------------------------------------------------------------------------------------- manifest
def dataset_manifest(cfg: DataConfig) -> dict:
    from datagen.shards import VIDEO_EXTS

    return {
        "format": "trackforge-webdataset",
        "version": 1,
        "content_hash": cfg.content_hash(),
        "num_scenes": cfg.generate.num_scenes,
        "scenes_per_shard": cfg.generate.scenes_per_shard,
        "num_shards": cfg.num_shards,
        "shards": [shard_name(s) for s in range(cfg.num_shards)],
        "members": [f"video.{VIDEO_EXTS[cfg.generate.video_codec]}", "tracks.npy", "visibility.npy",
                    "tracks3d.npy", "meta.json"],
        "config": cfg.to_dict(),
    }


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _check_manifest(cfg: DataConfig, out_dir: Path) -> str | None:
    """None if out_dir has no manifest or one for this config, else why it does not match."""
    path = out_dir / DATASET_FILE
    if not path.is_file():
        return None
    try:
        old = json.loads(path.read_text())
        old_hash = old["content_hash"]
    except (ValueError, KeyError, TypeError):
        return f"{path} is unreadable"
    if old_hash != cfg.content_hash():
        return (f"{out_dir} holds a data set made with a different config (content hash {old_hash} != "
                f"{cfg.content_hash()}); use another --out or delete it")
    return None


def missing_shards(cfg: DataConfig, out_dir: str | os.PathLike) -> list[str]:
    """Shard files of the config that do not exist in out_dir (all of them if out_dir has another data set)."""
    out_dir = Path(out_dir)
    if _check_manifest(cfg, out_dir) is not None:
        return [shard_name(s) for s in range(cfg.num_shards)]
    return [shard_name(s) for s in range(cfg.num_shards) if not (out_dir / shard_name(s)).is_file()]


# ---------------------------------------------------------------------------------------------- report
@dataclass
class GenerateReport:
    out_dir: Path
    task_index: int
    num_tasks: int
    shards: list[int]  # shards of this task
    shards_written: list[int] = field(default_factory=list)
    shards_skipped: list[int] = field(default_factory=list)  # already finished before this run
    scenes_rendered: int = 0
    scenes_reused: int = 0  # finished scenes found in the work dir
    retries: list[dict] = field(default_factory=list)  # {scene, attempt, seed, reason}
    failed_scenes: list[int] = field(default_factory=list)
    scene_timings: dict[int, dict] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def summary(self) -> str:
        return (f"task {self.task_index}/{self.num_tasks}: {len(self.shards_written)} shard(s) written, "
                f"{len(self.shards_skipped)} already done, {self.scenes_rendered} scene(s) rendered, "
                f"{self.scenes_reused} reused, {len(self.retries)} retr{'y' if len(self.retries) == 1 else 'ies'}, "
                f"{len(self.failed_scenes)} failed, {self.elapsed_s:.1f}s -> {self.out_dir}")


# ---------------------------------------------------------------------------------------------- child side
def _set_parent_death_signal(parent_pid: int) -> None:
    """Linux: die with the parent (a killed generator must not leave renders running)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(3)


def run_scene_job(job_path: str | os.PathLike) -> int:
    """Entry point of a scene process (`python -m datagen render-scene JOB.json`): render, encode, write.

    Writes the scene's one-sample tar atomically to job["out"] and prints a RESULT line with timings.
    """
    t_start = time.perf_counter()
    job = json.loads(Path(job_path).read_text())
    _set_parent_death_signal(int(job["parent_pid"]))
    if job.get("inject_failure"):
        raise RuntimeError(f"injected failure for scene {job['scene_index']} attempt {job['attempt']} "
                           "(generate.debug_fail_scenes)")
    from omegaconf import OmegaConf

    from datagen.scene_config import SceneConfig

    scene_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(SceneConfig), job["scene"]))
    from datagen.scene import render_scene  # imports Kubric/bpy: only ever inside a scene process
    from datagen.shards import encode_sample, write_tar

    t_import = time.perf_counter()
    workdir = Path(job["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    sample = render_scene(scene_cfg, int(job["seed"]), workdir, threads=job.get("threads"))
    sample.meta.update(scene_index=job["scene_index"], attempt=job["attempt"], seed=job["seed"],
                       base_seed=job["base_seed"])
    t_render = time.perf_counter()
    raw = encode_sample(sample, job["key"], job["codec"])
    write_tar(job["out"], [raw])
    t_done = time.perf_counter()
    timings = dict(sample.meta.get("timings", {}))
    timings.update(
        import_s=t_import - t_start,  # interpreter start is measured by the parent (process_s)
        scene_total_s=t_render - t_import,
        write_s=t_done - t_render,  # encode + tar write
        encode_s=json.loads(raw["meta.json"])["timings"]["encode_s"],
    )
    shutil.rmtree(workdir, ignore_errors=True)
    print(RESULT_PREFIX + json.dumps({"scene_index": job["scene_index"], "timings": timings}), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- parent side
@dataclass
class _Running:
    scene: int
    attempt: int
    seed: int
    proc: subprocess.Popen
    log_path: Path
    started: float
    log_file: object


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask: a SLURM allocation or taskset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Generator:
    def __init__(self, cfg: DataConfig, out_dir: Path, workers: int, task_index: int, num_tasks: int,
                 progress: bool):
        self.cfg, self.out_dir, self.workers = cfg, out_dir, workers
        # Cycles (and OpenMP) use every core by default: N parallel scenes would each start that many threads.
        self.render_threads = max(1, available_cpus() // workers)
        self.work = out_dir / WORK_DIR
        self.scenes_dir, self.logs_dir = self.work / "scenes", self.work / "logs"
        self.jobs_dir, self.tmp_dir = self.work / "jobs", self.work / "tmp"
        self.timeout = effective_timeout(cfg)
        self.progress_enabled = progress
        self.report = GenerateReport(out_dir, task_index, num_tasks, task_shards(cfg.num_shards, task_index,
                                                                                  num_tasks))
        log_name = "generate.log" if num_tasks == 1 else f"generate-task{task_index:04d}.log"
        self.log = logging.getLogger(f"datagen.generate.{id(self)}")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        self.handler = None
        self.log_name = log_name

    # -- helpers
    def scene_tar(self, scene: int) -> Path:
        return self.scenes_dir / f"{scene_key(scene)}.tar"

    def _warn(self, msg: str) -> None:
        self.log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _spawn(self, scene: int, attempt: int) -> _Running:
        g = self.cfg.generate
        seed = derive_seed(g.base_seed, scene, attempt)
        tag = f"{scene_key(scene)}-a{attempt}"
        job = {
            "scene": self.cfg.to_dict()["scene"], "seed": seed, "scene_index": scene, "attempt": attempt,
            "base_seed": g.base_seed, "key": scene_key(scene), "codec": g.video_codec,
            "out": str(self.scene_tar(scene)), "workdir": str(self.tmp_dir / tag), "parent_pid": os.getpid(),
            "inject_failure": attempt == 0 and scene in g.debug_fail_scenes, "threads": self.render_threads,
        }
        job_path = self.jobs_dir / f"{tag}.json"
        _write_json_atomic(job_path, job)
        log_path = self.logs_dir / f"{tag}.log"
        log_file = open(log_path, "wb")
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])  # the datagen package's parent (repo root)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["OMP_NUM_THREADS"] = str(self.render_threads)
        proc = subprocess.Popen(
            [sys.executable, "-m", "datagen", "render-scene", str(job_path)],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # own process group: a timeout kills everything the scene started
        )
        self.log.info(f"scene {scene} attempt {attempt} seed {seed}: started (pid {proc.pid})")
        return _Running(scene, attempt, seed, proc, log_path, time.monotonic(), log_file)

    @staticmethod
    def _kill(run: _Running) -> None:
        try:
            os.killpg(run.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        run.proc.wait()

    def _failure_reason(self, run: _Running, timed_out: bool) -> str:
        if timed_out:
            return f"timed out after {self.timeout:g}s"
        lines = [ln.strip() for ln in run.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        # The Python exception line (Blender prints memory-leak notes after it), else the last line.
        errors = [ln for ln in lines if _EXC_LINE.match(ln)]
        last = errors[-1] if errors else (lines[-1] if lines else "no output")
        rc = run.proc.returncode
        if rc < 0:  # a crash (SIGSEGV, SIGABRT from malloc checks, ...) or an outside kill
            try:
                return f"killed by {signal.Signals(-rc).name}: {last[:300]}"
            except ValueError:
                pass
        return f"exit code {rc}: {last[:300]}"

    def _result_timings(self, run: _Running) -> dict:
        for line in reversed(run.log_path.read_text(errors="replace").splitlines()):
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])["timings"]
        return {}

    def _finish_shard(self, shard: int) -> None:
        from datagen.shards import iter_tar_samples, write_tar

        scenes = list(shard_scenes(self.cfg, shard))
        samples = (raw for s in scenes for raw in iter_tar_samples(self.scene_tar(s)))
        write_tar(self.out_dir / shard_name(shard), ({k: v for k, v in raw.items() if k != "__url__"}
                                                     for raw in samples))
        for s in scenes:
            self.scene_tar(s).unlink(missing_ok=True)
        self.report.shards_written.append(shard)
        self.log.info(f"shard {shard} written: {shard_name(shard)} ({len(scenes)} scenes)")

    # -- main loop
    def run(self) -> GenerateReport:
        t0 = time.monotonic()
        cfg, out = self.cfg, self.out_dir
        for d in (self.scenes_dir, self.logs_dir, self.jobs_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.handler = logging.FileHandler(out / self.log_name)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(self.handler)
        try:
            self._run(t0)
        finally:
            self.report.elapsed_s = time.monotonic() - t0
            self.log.info(self.report.summary())
            self.log.removeHandler(self.handler)
            self.handler.close()
        return self.report

    def _run(self, t0: float) -> None:
        cfg, out, rep = self.cfg, self.out_dir, self.report
        self.log.info(f"generate: task {rep.task_index}/{rep.num_tasks}, shards {rep.shards}, "
                      f"{self.workers} worker(s), timeout {self.timeout:g}s, config hash {cfg.content_hash()}")
        pending_shards: dict[int, set[int]] = {}
        queue: deque[tuple[int, int]] = deque()
        for shard in rep.shards:
            scenes = shard_scenes(cfg, shard)
            if (out / shard_name(shard)).is_file():
                rep.shards_skipped.append(shard)
                for s in scenes:  # leftovers of a crash between shard write and cleanup
                    self.scene_tar(s).unlink(missing_ok=True)
                continue
            todo = {s for s in scenes if not self.scene_tar(s).is_file()}
            rep.scenes_reused += len(scenes) - len(todo)
            pending_shards[shard] = todo
            queue.extend((s, 0) for s in sorted(todo))
        for shard, todo in list(pending_shards.items()):
            if not todo:  # all scenes survived a crash: just assemble
                self._finish_shard(shard)
                del pending_shards[shard]
        total = len(queue)
        shard_of = {s: shard for shard, todo in pending_shards.items() for s in todo}
        running: list[_Running] = []
        progress = _Progress(total, self.progress_enabled)
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    running.append(self._spawn(*queue.popleft()))
                time.sleep(0.05)
                for run in list(running):
                    timed_out = run.proc.poll() is None and time.monotonic() - run.started > self.timeout
                    if run.proc.poll() is None and not timed_out:
                        continue
                    if timed_out:
                        self._kill(run)
                    running.remove(run)
                    run.log_file.close()
                    ok = not timed_out and run.proc.returncode == 0 and self.scene_tar(run.scene).is_file()
                    elapsed = time.monotonic() - run.started
                    if ok:
                        timings = self._result_timings(run)
                        timings["process_s"] = elapsed
                        rep.scene_timings[run.scene] = timings
                        rep.scenes_rendered += 1
                        self.log.info(f"scene {run.scene} attempt {run.attempt} seed {run.seed}: done in "
                                      f"{elapsed:.1f}s")
                        tag = f"{scene_key(run.scene)}-a{run.attempt}"
                        shutil.rmtree(self.tmp_dir / tag, ignore_errors=True)
                        (self.jobs_dir / f"{tag}.json").unlink(missing_ok=True)
                        run.log_path.unlink(missing_ok=True)  # logs of failed attempts are kept
                        shard = shard_of[run.scene]
                        pending_shards[shard].discard(run.scene)
                        if not pending_shards[shard]:
                            self._finish_shard(shard)
                            del pending_shards[shard]
                        progress.advance()
                        continue
                    reason = self._failure_reason(run, timed_out)
                    if run.attempt < cfg.generate.max_retries:
                        new_seed = derive_seed(cfg.generate.base_seed, run.scene, run.attempt + 1)
                        rep.retries.append({"scene": run.scene, "attempt": run.attempt, "seed": run.seed,
                                            "reason": reason})
                        self._warn(f"scene {run.scene} attempt {run.attempt} (seed {run.seed}) failed: {reason} "
                                   f"(log {run.log_path}); retrying with seed {new_seed}")
                        queue.appendleft((run.scene, run.attempt + 1))
                    else:
                        rep.failed_scenes.append(run.scene)
                        self._warn(f"scene {run.scene} failed after {run.attempt + 1} attempt(s): {reason} "
                                   f"(log {run.log_path}); its shard stays unfinished")
                        progress.advance(rendered=False)
        finally:
            for run in running:  # interrupted: do not leave renders behind
                self._kill(run)
                run.log_file.close()
            progress.close()
        if rep.failed_scenes:
            raise GenerationError(
                f"{len(rep.failed_scenes)} scene(s) failed after {cfg.generate.max_retries + 1} attempt(s): "
                f"{sorted(rep.failed_scenes)} (see {out / self.log_name}); rerun to retry them")


class _Progress:
    """rich progress bar (scenes, scenes/min, ETA); silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if not enabled or total == 0:
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.start, self.rendered = time.monotonic(), 0
        self.bar = Progress(TextColumn("[bold]rendering"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("scenes {task.fields[rate]}/min"), TimeElapsedColumn(),
                            TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))
        self.task = self.bar.add_task("scenes", total=total, rate="-")
        self.bar.start()

    def advance(self, rendered: bool = True) -> None:
        """One scene settled (rendered, or failed for good: those do not count in the rate)."""
        if self.bar is not None:
            self.rendered += int(rendered)
            rate = 60.0 * self.rendered / max(time.monotonic() - self.start, 1e-6)
            self.bar.update(self.task, advance=1, rate=f"{rate:.1f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def generate_dataset(cfg: DataConfig, out_dir: str | os.PathLike, *, workers: int | None = None,
                     task_index: int = 0, num_tasks: int = 1, progress: bool | None = None) -> GenerateReport:
    """Render this task's shards of `cfg` into out_dir (resuming: finished shards/scenes are skipped).

    Each scene runs in its own `python -m datagen render-scene` process with a timeout; failed scenes are
    retried with derived seeds up to generate.max_retries times. Raises GenerationError if scenes still fail
    or out_dir holds a data set of another config. Returns a GenerateReport.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mismatch = _check_manifest(cfg, out_dir)
    if mismatch:
        raise GenerationError(mismatch)
    _write_json_atomic(out_dir / DATASET_FILE, dataset_manifest(cfg))
    workers = int(workers if workers is not None else cfg.generate.workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if progress is None:
        progress = sys.stderr.isatty()
    return _Generator(cfg, out_dir, workers, task_index, num_tasks, progress).run()


def load_manifest_config(out_dir: str | os.PathLike) -> DataConfig:
    """The DataConfig recorded in out_dir/dataset.json."""
    data = json.loads((Path(out_dir) / DATASET_FILE).read_text())
    return config_from_dict(data["config"], source=str(Path(out_dir) / DATASET_FILE))
