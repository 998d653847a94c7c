"""Scene processes as the generator sees them: start one per scene attempt, watch it, kill it; cold or warm.

  ColdLauncher  `python -m datagen.pipeline.worker JOB.json`: a fresh interpreter per scene (pays the imports).
  WarmLauncher  asks a `datagen.pipeline.server` (started on first use) to run each scene in one of its forked
                processes (a process renders up to generate.scenes_per_process scenes).

Both give every scene its own process group (a kill takes everything the scene started) and report the exit
status and peak memory of each run. The warm launcher notices a dead server (its runs are "lost": they never got
an exit status) and starts a new one for the next scene; a server that cannot start makes `failed` say why, and
the generator carries on with cold processes.
"""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional

from datagen.pipeline.worker import kill_process_group

SERVER_START_TIMEOUT_S = 600.0  # imports take ~5-15 s; a server that is not ready after this is stuck


@dataclass
class SceneRun:
    """One try of one scene in one process."""
    scene: int
    attempt: int  # seed index: seed = derive_seed(base_seed, scene, attempt)
    seed: int
    slot: int  # worker slot 0..workers-1 (the GPU of multi-GPU nodes)
    job_path: Path
    log_path: Path
    pid: Optional[int] = None
    started: Optional[float] = None  # time.monotonic() when its process started (None: not yet)
    returncode: Optional[int] = None  # < 0: killed by signal -returncode
    max_rss_kb: Optional[int] = None
    lost: Optional[str] = None  # the run vanished without an exit status (its warm server died), and why
    timed_out: bool = False  # the generator killed it for running past the timeout
    announced: bool = False  # its start is in the generator's log
    proc: Optional[subprocess.Popen] = None
    log_file: Optional[IO] = None

    @property
    def done(self) -> bool:
        return self.returncode is not None or self.lost is not None


class ColdLauncher:
    kind = "cold"
    failed: Optional[str] = None

    def __init__(self, env: dict):
        self.env = env

    def start(self, run: SceneRun) -> None:
        run.log_file = open(run.log_path, "wb")
        run.proc = subprocess.Popen(
            [sys.executable, "-m", "datagen.pipeline.worker", str(run.job_path)],
            stdout=run.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
            start_new_session=True,  # own process group: a timeout kills everything the scene started
        )
        run.pid, run.started = run.proc.pid, time.monotonic()

    def poll(self, runs: list[SceneRun], wait_s: float) -> None:
        time.sleep(wait_s)
        for run in runs:
            if run.proc is not None and not run.done:
                self._reap(run, os.WNOHANG)

    @staticmethod
    def _reap(run: SceneRun, flags: int) -> None:
        try:
            pid, status, usage = os.wait4(run.pid, flags)
        except ChildProcessError:  # reaped elsewhere: take Popen's word
            run.returncode = run.proc.returncode if run.proc.returncode is not None else -signal.SIGKILL
            return
        if pid:
            run.returncode = run.proc.returncode = os.waitstatus_to_exitcode(status)
            run.max_rss_kb = usage.ru_maxrss
            run.log_file.close()

    def kill(self, run: SceneRun) -> None:
        kill_process_group(run.pid)

    def close(self, runs: list[SceneRun]) -> None:
        for run in runs:
            if run.proc is not None and not run.done:
                kill_process_group(run.pid)
                self._reap(run, 0)


class WarmLauncher:
    kind = "warm"

    def __init__(self, env: dict, imports: list[str], server_log: Path, serving: str, max_restarts: int = 3,
                 scenes_per_process: int = 1):
        self.env, self.imports, self.server_log, self.serving = env, list(imports), server_log, serving
        self.scenes_per_process = scenes_per_process
        self.max_restarts = max_restarts
        self.proc: Optional[subprocess.Popen] = None
        self.ready = False
        self.started_at = 0.0
        self.import_s: Optional[float] = None  # the server's import time (once per server)
        self.failed: Optional[str] = None  # why warm scenes are not possible (the generator goes cold)
        self.deaths = 0
        self.runs: dict[int, SceneRun] = {}  # request id -> run, for this server
        self.next_id = 0
        self.buf = b""

    # -- server life
    def _start_server(self) -> None:
        argv = [sys.executable, "-m", "datagen.pipeline.server", "--parent-pid", str(os.getpid()),
                "--serving", self.serving, "--scenes-per-process", str(self.scenes_per_process)]
        for spec in self.imports:
            argv += ["--import", spec]
        with open(self.server_log, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                         env=self.env, start_new_session=True)
        self.ready, self.buf, self.runs = False, b"", {}
        self.started_at = time.monotonic()

    def _server_gone(self, why: str) -> None:
        """The server died or was given up: its runs are lost; the next start() starts a new one."""
        for run in self.runs.values():
            if not run.done:
                run.lost = why
        self.runs = {}
        if self.proc is not None:
            kill_process_group(self.proc.pid)
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        self.proc, self.ready = None, False

    def _send(self, request: dict) -> None:
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the server died: poll() will find out and report its runs as lost

    # -- launcher interface
    def start(self, run: SceneRun) -> None:
        if self.proc is None:
            self._start_server()
        rid, self.next_id = self.next_id, self.next_id + 1
        self.runs[rid] = run
        self._send({"cmd": "run", "id": rid, "job": str(run.job_path), "log": str(run.log_path)})

    def poll(self, runs: list[SceneRun], wait_s: float) -> None:
        if self.proc is None:
            time.sleep(wait_s)
            return
        readable, _, _ = select.select([self.proc.stdout], [], [], wait_s)
        eof = False
        if readable:
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            eof = not chunk
            self.buf += chunk
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            self._event(json.loads(line))
        if self.proc is None:
            return
        if eof or self.proc.poll() is not None:
            rc = self.proc.wait()
            why = f"the warm scene server died (exit code {rc}; see {self.server_log})"
            if not self.ready:
                self._give_up(f"the warm scene server exited while importing (exit code {rc}; see {self.server_log})")
                return
            self.deaths += 1
            self._server_gone(why)
            if self.deaths > self.max_restarts:
                self.failed = f"the warm scene server died {self.deaths} times"
        elif not self.ready and time.monotonic() - self.started_at > SERVER_START_TIMEOUT_S:
            self._give_up(f"the warm scene server was not ready after {SERVER_START_TIMEOUT_S:g}s")

    def _give_up(self, why: str) -> None:
        self.failed = why
        self._server_gone(why)

    def _event(self, ev: dict) -> None:
        kind = ev.get("event")
        if kind == "ready":
            self.ready, self.import_s = True, float(ev.get("import_s", 0.0))
        elif kind == "error":
            self._give_up(f"the warm scene server could not import generate.warm_imports: {ev.get('message')}")
        elif kind == "started":
            run = self.runs.get(ev["id"])
            if run is not None:
                run.pid, run.started = int(ev["pid"]), time.monotonic()
        elif kind == "exit":
            run = self.runs.pop(ev["id"], None)
            if run is not None:
                run.returncode, run.max_rss_kb = int(ev["returncode"]), ev.get("max_rss_kb")

    def kill(self, run: SceneRun) -> None:
        for rid, r in self.runs.items():
            if r is run:
                self._send({"cmd": "kill", "id": rid})

    def close(self, runs: list[SceneRun]) -> None:
        """End the server (it kills its children when its stdin closes); bounded wait, then SIGKILL."""
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._server_gone("generation ended")
