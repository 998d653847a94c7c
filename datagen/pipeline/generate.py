"""Render a data set into WebDataset shards: scenes in processes of their own, retries, resume, task slicing, locks.

Layout of `out_dir` (see docs/datagen_pipeline.md):
  dataset.json                 resolved config, content hash, shard list (written before any rendering)
  generate.log                 one line per scene attempt (retries and failures included)
  scene_timings.jsonl          one JSON line per rendered scene: timings, threads, device, peak memory
  shard-000000.tar ...         finished shards (written atomically; a shard file is always complete)
  .work/scenes/scene-*.tar     finished scenes of shards that are not finished yet (kept across crashes)
  .work/logs/scene-*-aK.log    stdout/stderr of each scene process (attempt K); scene-server.log
  .work/locks/shard-*.lock     who is generating which shard (tracker.common.output_lock)
Per task (--num-tasks > 1) the two logs are generate-taskNNNN.log and scene_timings-taskNNNN.jsonl.
Scene i is rendered with seed derive_seed(base_seed, i, attempt); attempt 0 first, a new attempt per retry
(except after a kill from outside, which retries the same attempt once).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path

from tracker.common.atomic import TMP_MARK, check_writable, remove_leftovers, tmp_path_for
from datagen.config import DataConfig
from tracker.common.output_lock import LockSet
from datagen.pipeline.process_tmp import remove_scene_process_tmp, scene_process_tmp
from datagen.pipeline.processes import ColdLauncher, SceneRun, WarmLauncher
from datagen.pipeline.worker import DISK_FULL_ERRNOS, EXIT_FATAL, FATAL_PREFIX, RESULT_PREFIX
from datagen.formats.shard_io import DATASET_FILE, iter_tar_samples, shard_name, write_tar
from datagen.pipeline.layout import (check_manifest, dataset_manifest, derive_seed, effective_timeout, scene_key,
                                     shard_scenes, task_shards, write_json_atomic)

_EXC_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure)(:|$)")
WORK_DIR = ".work"
# Signals that mean "someone killed the process" (the OOM killer, an admin, a scheduler) rather than "the scene
# crashed": such a try is repeated with the same seed once, so the data set does not change behind one's back.
_KILL_SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)
FAULT_ENV = "TRACKFORGE_FAULT_POINT"
MIN_FREE_BYTES = 32 * 2**20  # a failed scene with less free space than this in out_dir failed for lack of disk


class GenerationError(RuntimeError):
    """Generation could not finish (scenes failed after all retries, or out_dir holds another data set)."""


_FAULT_HITS: Counter = Counter()


def _fault_point(name: str) -> None:
    """Fault injection for the crash-consistency tests: with TRACKFORGE_FAULT_POINT=name[:n] the generator
    SIGKILLs itself the n-th time (default 1st) it passes `name`. Unset (always, outside tests): a dict lookup."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point == name:
        _FAULT_HITS[name] += 1
        if _FAULT_HITS[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


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
    retries: list[dict] = field(default_factory=list)  # {scene, attempt, seed, reason, same_seed}
    failed_scenes: list[int] = field(default_factory=list)
    scene_timings: dict[int, dict] = field(default_factory=dict)
    elapsed_s: float = 0.0
    scene_process: str = ""  # "warm" or "cold" (what the run ended with)
    server_import_s: float | None = None  # the warm server's one-time imports

    def summary(self) -> str:
        return (f"task {self.task_index}/{self.num_tasks}: {len(self.shards_written)} shard(s) written, "
                f"{len(self.shards_skipped)} already done, {self.scenes_rendered} scene(s) rendered, "
                f"{self.scenes_reused} reused, {len(self.retries)} retr{'y' if len(self.retries) == 1 else 'ies'}, "
                f"{len(self.failed_scenes)} failed, {self.elapsed_s:.1f}s -> {self.out_dir}")


# ---------------------------------------------------------------------------------------------- generator
def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask: a SLURM allocation or taskset), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read_lines(path: Path) -> list[str]:
    try:
        return [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return []


class _LogFile(logging.FileHandler):
    """generate.log; a line that cannot be written (full disk) is dropped instead of a traceback on stderr."""

    def handleError(self, record: logging.LogRecord) -> None:
        pass


class _Generator:
    def __init__(self, cfg: DataConfig, out_dir: Path, workers: int, task_index: int, num_tasks: int,
                 progress: bool, locks: LockSet):
        self.cfg, self.out_dir, self.workers, self.locks = cfg, out_dir, workers, locks
        # Cycles (and OpenMP) use every core by default: N parallel scenes would each start that many threads.
        self.render_threads = max(1, available_cpus() // workers)
        self.work = out_dir / WORK_DIR
        self.scenes_dir, self.logs_dir = self.work / "scenes", self.work / "logs"
        self.jobs_dir, self.tmp_dir = self.work / "jobs", self.work / "tmp"
        self.timeout = effective_timeout(cfg)
        self.process_tmp: Path | None = None  # the scene processes' $TMPDIR while scenes run (_run)
        self.progress_enabled = progress
        self.report = GenerateReport(out_dir, task_index, num_tasks, task_shards(cfg.num_shards, task_index,
                                                                                  num_tasks))
        suffix = "" if num_tasks == 1 else f"-task{task_index:04d}"
        self.log_name, self.timings_name = f"generate{suffix}.log", f"scene_timings{suffix}.jsonl"
        self.log = logging.getLogger(f"datagen.pipeline.generate.{id(self)}")
        self.log.propagate = False
        self.log.setLevel(logging.INFO)
        self.handler = None
        self.tries: Counter = Counter()  # scene -> failed tries so far (bounded by max_retries)
        self.kills: Counter = Counter()  # (scene, attempt) -> kills from outside
        self.launcher = None
        self.late_imports_noted = False

    # -- helpers
    def scene_tar(self, scene: int) -> Path:
        return self.scenes_dir / f"{scene_key(scene)}.tar"

    def _warn(self, msg: str) -> None:
        self.log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _env(self) -> dict:
        env = dict(os.environ)
        import datagen

        root = str(Path(datagen.__file__).resolve().parents[1])  # the datagen package's parent (repo root)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["OMP_NUM_THREADS"] = str(self.render_threads)
        env.pop(FAULT_ENV, None)  # fault points are the generator's own
        if self.process_tmp is not None:
            # a folder of this run's (datagen.pipeline.process_tmp: why)
            env["TMPDIR"] = str(self.process_tmp)
        return env

    def _make_launcher(self):
        self.report.scene_process = self.cfg.generate.scene_process
        if self.cfg.generate.scene_process == "warm":
            return WarmLauncher(self._env(), self.cfg.generate.warm_imports, self.logs_dir / "scene-server.log",
                                str(self.out_dir), scenes_per_process=self.cfg.generate.scenes_per_process)
        return ColdLauncher(self._env())

    def _start(self, scene: int, attempt: int, slot: int) -> SceneRun:
        g = self.cfg.generate
        seed = derive_seed(g.base_seed, scene, attempt)
        tag = f"{scene_key(scene)}-a{attempt}"
        repeat = self.kills[(scene, attempt)]  # a same-seed retry after a kill keeps the killed try's log
        log_tag = tag + (f"-r{repeat}" if repeat else "")
        job = {
            "scene": self.cfg.to_dict()["scene"], "seed": seed, "scene_index": scene, "attempt": attempt,
            "base_seed": g.base_seed, "key": scene_key(scene), "codec": g.video_codec,
            "out": str(self.scene_tar(scene)), "workdir": str(self.tmp_dir / tag), "parent_pid": os.getpid(),
            "inject_failure": attempt == 0 and scene in g.debug_fail_scenes, "threads": self.render_threads,
            "gpu_slot": slot,
        }
        job_path = self.jobs_dir / f"{tag}.json"
        write_json_atomic(job_path, job)
        run = SceneRun(scene, attempt, seed, slot, job_path, self.logs_dir / f"{log_tag}.log")
        self.launcher.start(run)
        return run

    def _failure(self, run: SceneRun) -> tuple[str, str]:
        """(kind, reason) of a failed try; kind: timeout | killed | crash | failure | fatal (no retry can help)."""
        if run.timed_out:
            return "timeout", f"timed out after {self.timeout:g}s"
        if run.lost:
            self.kills[(run.scene, run.attempt)] += 1
            return "killed", run.lost
        lines = _read_lines(run.log_path)
        rc = run.returncode
        if rc == EXIT_FATAL:
            msg = [ln[len(FATAL_PREFIX):] for ln in lines if ln.startswith(FATAL_PREFIX)]
            return "fatal", msg[-1] if msg else self._disk_full_reason() or f"exit code {EXIT_FATAL}, log unreadable"
        disk_full = self._disk_full_reason()
        if disk_full:  # e.g. Blender could not write its frames: the seed is not to blame
            return "fatal", disk_full
        mem = f", peak memory {run.max_rss_kb / 2**20:.2f} GB" if run.max_rss_kb else ""
        # The Python exception line (Blender prints memory-leak notes after it; TensorFlow prints log lines
        # before): never "the last line", which says nothing about why the scene failed.
        errors = [ln for ln in lines if _EXC_LINE.match(ln) or ln.startswith("Fatal Python error")]
        if rc is not None and rc < 0:
            try:
                sig = signal.Signals(-rc)
            except ValueError:
                return "crash", f"killed by signal {-rc}{mem}"
            if sig in _KILL_SIGNALS:
                self.kills[(run.scene, run.attempt)] += 1
                return "killed", (f"killed by {sig.name} from outside the generator (out of memory? the kernel's "
                                  f"OOM killer logs to `dmesg`){mem}")
            return "crash", f"crashed with {sig.name}{mem}" + (f": {errors[-1][:300]}" if errors else "")
        if rc == 0:
            return "failure", "exited without writing its scene tar"
        return "failure", f"exit code {rc}: " + (errors[-1] if errors else "no Python exception in its log")[:300]

    def _disk_full_reason(self) -> str | None:
        free = shutil.disk_usage(self.out_dir).free
        if free < MIN_FREE_BYTES:
            return (f"disk full: {free / 2**20:.1f} MiB free in {self.out_dir}; free space and rerun (finished "
                    "scenes and shards are kept)")
        return None

    def _result(self, run: SceneRun) -> dict:
        for line in reversed(_read_lines(run.log_path)):
            if line.startswith(RESULT_PREFIX):
                return json.loads(line[len(RESULT_PREFIX):])
        return {}

    def _clean_leftovers(self, shard: int) -> None:
        """Temp files of killed writers of this shard and its scenes (we hold the shard's lock)."""
        remove_leftovers(self.out_dir, f"{shard_name(shard)}{TMP_MARK}*")
        for s in shard_scenes(self.cfg, shard):
            remove_leftovers(self.scenes_dir, f"{scene_key(s)}.tar{TMP_MARK}*")

    def _finish_shard(self, shard: int) -> None:
        """Assemble the shard from its scene tars: temp file, fsync, rename, then delete the scene tars. A kill
        at any point leaves either no shard (scene tars kept) or the whole shard (leftovers deleted on rerun)."""
        scenes = list(shard_scenes(self.cfg, shard))
        samples = (raw for s in scenes for raw in iter_tar_samples(self.scene_tar(s)))
        final = self.out_dir / shard_name(shard)
        tmp = tmp_path_for(final)
        write_tar(tmp, ({k: v for k, v in raw.items() if k != "__url__"} for raw in samples))
        _fault_point("shard_tmp_written")
        os.replace(tmp, final)
        _fault_point("shard_renamed")
        for i, s in enumerate(scenes):
            self.scene_tar(s).unlink(missing_ok=True)
            if i == 0:
                _fault_point("scene_tar_deleted")
        self.locks.release(shard_name(shard)[: -len(".tar")])
        self.report.shards_written.append(shard)
        self.log.info(f"shard {shard} written: {shard_name(shard)} ({len(scenes)} scenes)")

    def _record_timings(self, run: SceneRun, result: dict, elapsed: float) -> dict:
        timings = dict(result.get("timings", {}))
        timings["process_s"] = elapsed
        late = [m for m in result.get("late_imports") or [] if m not in sys.stdlib_module_names]
        record = {"key": scene_key(run.scene), "scene": run.scene, "attempt": run.attempt, "seed": run.seed,
                  "render_threads": result.get("render_threads"), "render_device": result.get("render_device"),
                  "scene_process": self.launcher.kind, "pid": run.pid, "max_rss_kb": run.max_rss_kb,
                  "host": socket.gethostname(),
                  "finished": time.time(), "late_imports": late, "timings": timings}
        with open(self.out_dir / self.timings_name, "a") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
        if self.launcher.kind == "warm" and late and not self.late_imports_noted:
            self.late_imports_noted = True
            self.log.info(f"scene processes imported modules the warm server had not: {', '.join(late)} (list the "
                          "heavy ones in generate.warm_imports so that no scene pays for them)")
        return timings

    # -- main loop
    def run(self) -> GenerateReport:
        t0 = time.monotonic()
        for d in (self.scenes_dir, self.logs_dir, self.jobs_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        rep = self.report
        unfinished = [s for s in rep.shards if not (self.out_dir / shard_name(s)).is_file()]
        # Before any log is opened: a generator that finds its shards taken leaves no trace in the folder.
        self.locks.acquire([shard_name(s)[: -len(".tar")] for s in unfinished],
                           labels={shard_name(s)[: -len(".tar")]: str(self.out_dir / shard_name(s))
                                   for s in unfinished})
        self.handler = _LogFile(self.out_dir / self.log_name)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.log.addHandler(self.handler)
        try:
            self._run()
        finally:
            self.report.elapsed_s = time.monotonic() - t0
            self.log.info(self.report.summary())
            self.log.removeHandler(self.handler)
            self.handler.close()
        return self.report

    def _run(self) -> None:
        cfg, out, rep = self.cfg, self.out_dir, self.report
        g = cfg.generate
        self.log.info(f"generate: task {rep.task_index}/{rep.num_tasks}, shards {rep.shards}, "
                      f"{self.workers} worker(s), {g.scene_process} scene processes, timeout {self.timeout:g}s, "
                      f"config hash {cfg.content_hash()}, pid {os.getpid()} on {socket.gethostname()}")
        pending_shards: dict[int, set[int]] = {}
        queue: deque[tuple[int, int]] = deque()
        for shard in rep.shards:
            scenes = shard_scenes(cfg, shard)
            if (out / shard_name(shard)).is_file():
                rep.shards_skipped.append(shard)
                for s in scenes:  # leftovers of a crash between shard rename and cleanup
                    self.scene_tar(s).unlink(missing_ok=True)
                continue
            self._clean_leftovers(shard)
            todo = {s for s in scenes if not self.scene_tar(s).is_file()}
            rep.scenes_reused += len(scenes) - len(todo)
            pending_shards[shard] = todo
            queue.extend((s, 0) for s in sorted(todo))
        for shard, todo in list(pending_shards.items()):
            if not todo:  # all scenes survived a crash: just assemble
                self._finish_shard(shard)
                del pending_shards[shard]
        shard_of = {s: shard for shard, todo in pending_shards.items() for s in todo}
        running: list[SceneRun] = []
        progress = _Progress(len(queue), self.progress_enabled)
        free_slots = list(range(self.workers))
        # The scene processes' $TMPDIR (see _env), removed with everything in it when the generator ends.
        self.process_tmp = scene_process_tmp() if queue else None
        self.launcher = self._make_launcher() if queue else None
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    running.append(self._start(*queue.popleft(), free_slots.pop(0)))
                self.launcher.poll(running, 0.05)
                if self.launcher.failed:
                    self._go_cold(running)
                now = time.monotonic()
                for run in list(running):
                    if run.pid is not None and not run.announced:
                        run.announced = True
                        self.log.info(f"scene {run.scene} attempt {run.attempt} seed {run.seed}: started "
                                      f"(pid {run.pid}, {self.launcher.kind})")
                    if not run.done:
                        if run.started is not None and not run.timed_out and now - run.started > self.timeout:
                            run.timed_out = True
                            self.launcher.kill(run)
                        continue
                    running.remove(run)
                    free_slots = sorted(free_slots + [run.slot])
                    if run.lost and run.started is None:  # never ran (its server failed first): not a try
                        queue.appendleft((run.scene, run.attempt))
                        continue
                    self._settle(run, queue, pending_shards, shard_of, progress)
        finally:
            if self.launcher is not None:  # interrupted or done: no scene process outlives the generator
                self.launcher.close(running)
                server_import_s = getattr(self.launcher, "import_s", None)
                rep.server_import_s = server_import_s if server_import_s is not None else rep.server_import_s
            remove_scene_process_tmp(self.process_tmp)
            progress.close()
        if rep.failed_scenes:
            raise GenerationError(
                f"{len(rep.failed_scenes)} scene(s) failed after {g.max_retries + 1} attempt(s): "
                f"{sorted(rep.failed_scenes)} (see {out / self.log_name}); rerun to retry them")

    def _go_cold(self, running: list[SceneRun]) -> None:
        self._warn(f"{self.launcher.failed}; rendering the remaining scenes in fresh processes (as with "
                   "generate.scene_process=cold)")
        self.launcher.close(running)  # its runs are lost: the main loop retries them
        self.report.server_import_s = self.launcher.import_s
        self.launcher = ColdLauncher(self._env())
        self.report.scene_process = "cold"

    def _settle(self, run: SceneRun, queue: deque, pending_shards: dict, shard_of: dict, progress) -> None:
        """Account for a finished try: shard progress on success, else a retry (same or new seed) or a failure."""
        g, rep = self.cfg.generate, self.report
        elapsed = time.monotonic() - run.started
        if run.returncode == 0 and not run.timed_out and self.scene_tar(run.scene).is_file():
            rep.scene_timings[run.scene] = self._record_timings(run, self._result(run), elapsed)
            rep.scenes_rendered += 1
            self.log.info(f"scene {run.scene} attempt {run.attempt} seed {run.seed}: done in {elapsed:.1f}s")
            for scratch in self.tmp_dir.glob(f"{scene_key(run.scene)}-a*"):  # also of killed/timed-out tries
                shutil.rmtree(scratch, ignore_errors=True)
            for job in self.jobs_dir.glob(f"{scene_key(run.scene)}-a*.json"):
                job.unlink(missing_ok=True)
            run.log_path.unlink(missing_ok=True)  # logs of failed tries are kept
            _fault_point("scene_done")
            shard = shard_of[run.scene]
            pending_shards[shard].discard(run.scene)
            if not pending_shards[shard]:
                self._finish_shard(shard)
                del pending_shards[shard]
            progress.advance()
            return
        kind, reason = self._failure(run)
        if kind == "fatal":  # render_device=gpu without a GPU, a full disk: every scene would fail the same way
            raise GenerationError(f"scene {run.scene}: {reason}")
        self.tries[run.scene] += 1
        if self.tries[run.scene] > g.max_retries:
            rep.failed_scenes.append(run.scene)
            self._warn(f"scene {run.scene} failed after {self.tries[run.scene]} attempt(s): {reason} "
                       f"(log {run.log_path}); its shard stays unfinished")
            progress.advance(rendered=False)
            return
        # A kill says nothing about the scene: repeat its seed once, so that the data set stays what it would
        # have been. A second kill of the same seed, a crash, an exception or a timeout moves to the next seed.
        same_seed = kind == "killed" and self.kills[(run.scene, run.attempt)] == 1
        attempt = run.attempt if same_seed else run.attempt + 1
        seed = derive_seed(g.base_seed, run.scene, attempt)
        rep.retries.append({"scene": run.scene, "attempt": run.attempt, "seed": run.seed, "reason": reason,
                            "same_seed": same_seed})
        self._warn(f"scene {run.scene} attempt {run.attempt} (seed {run.seed}) failed: {reason} (log {run.log_path}); "
                   + ("retrying the same seed" if same_seed else f"retrying with seed {seed}"))
        queue.appendleft((run.scene, attempt))


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

    Each scene runs in its own process (forked from a warm server that imported Kubric once, or a fresh
    interpreter with generate.scene_process=cold) with a timeout; failed scenes are retried with derived seeds
    up to generate.max_retries times (a scene killed from outside first with the same seed). Raises
    GenerationError if scenes still fail or out_dir holds a data set of another config, OutputBusyError
    if another live generator is producing one of this task's shards, and OutputNotWritableError (before any
    work) if out_dir cannot take new files, even when the data set there is complete (its locks are files).
    Returns a GenerateReport.
    """
    out_dir = Path(out_dir)
    workers = int(workers if workers is not None else cfg.generate.workers)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    check_writable(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    locks = LockSet(out_dir / WORK_DIR / "locks", task=f"{task_index}/{num_tasks}")
    try:
        # Check-then-write of the manifest under a short lock: of two runs with different configs starting
        # at once, the second sees the first one's manifest and is refused.
        locks.acquire(["dataset"], labels={"dataset": str(out_dir / DATASET_FILE)}, wait_s=60)
        mismatch = check_manifest(cfg, out_dir)
        if mismatch:
            raise GenerationError(mismatch)
        write_json_atomic(out_dir / DATASET_FILE, dataset_manifest(cfg))
        locks.release("dataset")
        if progress is None:
            progress = sys.stderr.isatty()
        return _Generator(cfg, out_dir, workers, task_index, num_tasks, progress, locks).run()
    except OSError as err:
        if err.errno not in DISK_FULL_ERRNOS:
            raise
        raise GenerationError(f"disk full: {err}; free space and rerun (finished scenes and shards are kept)"
                              ) from None
    finally:
        locks.release_all()
