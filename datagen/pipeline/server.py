"""Warm scene server: imports Kubric/TensorFlow/PyTorch once, then forks the processes that render the scenes.

    python -m datagen.pipeline.server --parent-pid PID [--import MODULE[:FUNCTION] ...] [--serving OUT]
                                      [--scenes-per-process N]

Started by datagen.pipeline.generate (generate.scene_process=warm). Scenes run in processes created by fork() from
this server, which never builds a scene itself, so every child starts from the state a fresh interpreter has after
the same imports and a scene pays milliseconds instead of the ~5-15 s of interpreter start and imports. A child
imports its own Blender, then renders up to `--scenes-per-process` scenes one after the other (Kubric resets
Blender to its factory state before each scene; the shards are byte-identical to those of one fresh process per
scene, tested) and exits; a scene that fails or is killed ends its process. Re-using a process saves each scene
the Blender import and the first calls of the actors' code (~0.5 s of a 5 s scene at 128x128). One process is
always forked ahead of time (a "spare"): it imports its Blender while the current scenes render and takes over
when a process retires or dies (it costs one idle process's memory, ~0.3 GB).

Protocol (JSON lines): requests on stdin, events on the original stdout (fd 1 is pointed at stderr, the server
log, so that whatever imported libraries print cannot corrupt the event stream):
  -> {"cmd": "run", "id": N, "job": JOB.json, "log": LOG}   run datagen.pipeline.worker's job JOB in a process
  -> {"cmd": "kill", "id": N}                              SIGKILL its process group (timeouts)
  <- {"event": "ready", "pid": P, "import_s": S, "threads": K}  once the imports are done
  <- {"event": "error", "message": M}                      the imports failed (the server then exits)
  <- {"event": "started", "id": N, "pid": P}
  <- {"event": "exit", "id": N, "returncode": R, "max_rss_kb": M}  the job ended: its process exited with R (< 0:
     killed by signal -R) or finished it with 0 and waits for the next one; M: the process's peak memory so far
End of stdin (the generator closed it or died) kills every child and ends the server.

Fork safety: the server starts no thread of its own, but imported libraries do, and fork() copies none of them.
  * Blender (bpy) is never imported here: its TBB thread pool and OpenEXR's thread pool do not survive fork, so a
    child forked after `import bpy` renders on one thread (measured 2.49 s instead of 1.36 s of wall time for the
    same render on 2 cores, with the same CPU time) and could wait for ever on EXR threads that do not exist. Each
    child imports bpy itself (~0.4 s with Kubric's renderer, once per process); a `--import` that pulls bpy in
    is an error event (the generator then falls back to fresh processes);
  * a GPU driver context must not be created before fork(): GPUs are only ever enumerated inside a child
    (datagen.scene.cycles_device), never here.
OpenBLAS re-creates its threads after fork by itself.
Dying: the server dies with its parent (parent-death signal) and so do its children with it.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import sys
import time
import traceback
from dataclasses import dataclass

from tracker.common.errors import one_line
from datagen.pipeline.worker import kill_process_group, run_scene_job, set_parent_death_signal

# What every child imports right after the fork, never the server (see "Fork safety" above).
AFTER_FORK_IMPORTS = ("bpy", "kubric.renderer.blender", "datagen.scene.render", "datagen.actors.humans.actor")
# How long the server waits for its first spare's imports before it reports ready (bounded: a spare that hangs
# in its imports is killed by the scene timeout once it has a job).
SPARE_READY_WAIT_S = 120.0


def _emit(fd: int, event: dict) -> None:
    data = (json.dumps(event) + "\n").encode()
    while data:
        data = data[os.write(fd, data):]


def _import_all(specs: list[str]) -> None:
    for spec in specs:
        module, _, func = spec.partition(":")
        mod = importlib.import_module(module)
        if func:
            getattr(mod, func)()


def _spare(server_pid: int, events_fd: int, jobs_r: int, jobs_w: int, done_w: int, ready_w: int | None,
           scenes: int) -> None:
    """In a forked child, ahead of its scenes: own session, its own Blender imported (while other scenes render;
    then one byte on `ready_w` if the server waits for it), then up to `scenes` jobs read from `jobs_r`, each run
    with the job's log as stdout/stderr; after each but the last, b"0\\n" on `done_w` says it finished and waits for
    the next. The process exits after its last job, a failed one, or when the server closes `jobs_r`."""
    code = 1
    try:
        os.setsid()  # own process group: a timeout kills everything the scene started
        set_parent_death_signal(server_pid)
        os.close(events_fd)
        os.close(jobs_w)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        _import_all(list(AFTER_FORK_IMPORTS))  # output so far goes to the server log
        if ready_w is not None:
            os.write(ready_w, b".")
            os.close(ready_w)
        import faulthandler

        with os.fdopen(jobs_r, "rb") as jobs:
            for n in range(scenes):
                line = jobs.readline()  # the server writes a line or closes the pipe; if it dies, so do we
                if not line:
                    code = 0  # the server shut down before this process got (another) scene
                    break
                req = json.loads(line)
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                faulthandler.enable()
                code = run_scene_job(req["job"])
                if code != 0 or n == scenes - 1:
                    break
                for stream in (sys.stdout, sys.stderr):
                    stream.flush()
                os.write(done_w, b"0\n")
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)  # no atexit handlers, no Blender shutdown: the parent's state is not ours to tear down


@dataclass
class _Child:
    """A scene process as the server sees it: its pid, the write end of its job pipe, the read end of its done
    pipe, and the request it runs (None: idle, or a spare that has had no job yet)."""
    pid: int
    jobs_w: int
    done_r: int
    request: int | None = None

    def close(self) -> None:
        for fd in (self.jobs_w, self.done_r):
            try:
                os.close(fd)
            except OSError:
                pass


def _fork_spare(server_pid: int, events_fd: int, scenes: int, others: list[_Child] = (),
                wait_ready_s: float = 0.0) -> _Child:
    """Fork a scene process ahead of its scenes (see _spare); it closes its copies of the `others`' pipes (so that
    closing a job pipe here still ends that process). With wait_ready_s, wait up to that long until it has imported
    Blender (or died)."""
    jobs_r, jobs_w = os.pipe()
    done_r, done_w = os.pipe()
    ready_r, ready_w = os.pipe() if wait_ready_s > 0 else (None, None)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        if ready_r is not None:
            os.close(ready_r)
        os.close(done_r)
        for other in others:
            other.close()
        _spare(server_pid, events_fd, jobs_r, jobs_w, done_w, ready_w, scenes)
    os.close(jobs_r)
    os.close(done_w)
    if ready_r is not None:
        os.close(ready_w)
        if select.select([ready_r], [], [], wait_ready_s)[0]:
            os.read(ready_r, 1)  # b"." when ready, b"" when it died first (its job will report the failure)
        os.close(ready_r)
    return _Child(pid, jobs_w, done_r)


def _peak_rss_kb(pid: int) -> int | None:
    """VmHWM of a living process (kB), None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def serve(specs: list[str], parent_pid: int, scenes_per_process: int = 1) -> int:
    events_fd = os.dup(1)
    os.set_inheritable(events_fd, False)
    os.dup2(2, 1)  # library chatter on stdout goes to the server log, not into the event stream
    set_parent_death_signal(parent_pid)
    t0 = time.perf_counter()
    try:
        _import_all(specs)
        if "bpy" in sys.modules:
            raise ImportError("bpy was imported (Blender's render threads do not survive fork: every scene would "
                              "render on one thread); leave bpy and modules that import it out of warm_imports")
    except BaseException as err:
        traceback.print_exc()
        _emit(events_fd, {"event": "error", "message": f"{type(err).__name__}: {one_line(str(err))}"[:500]})
        return 1
    threads = len(os.listdir("/proc/self/task"))
    server_pid = os.getpid()
    # The spare: the next process to get a scene when no idle one is left. The first one has imported Blender
    # before the server reports ready, so that the first scene does not wait for it either (its import is part of
    # the server's start).
    spare: _Child | None = _fork_spare(server_pid, events_fd, scenes_per_process, wait_ready_s=SPARE_READY_WAIT_S)
    _emit(events_fd, {"event": "ready", "pid": os.getpid(), "import_s": time.perf_counter() - t0,
                      "threads": threads})
    busy: dict[int, _Child] = {}  # pid -> a process running a scene
    idle: list[_Child] = []  # processes that finished a scene and wait for the next
    buf = b""
    stdin_open = True
    while stdin_open or busy:
        watched = [c.done_r for c in busy.values()] + ([0] if stdin_open else [])
        readable, _, _ = select.select(watched, [], [], 0.02)
        if 0 in readable:
            chunk = os.read(0, 65536)
            if not chunk:  # the generator is gone or done: no scene may outlive it
                stdin_open = False
                for child in busy.values():
                    kill_process_group(child.pid)
                for child in idle + ([spare] if spare is not None else []):
                    child.close()  # EOF on its job pipe: it exits without a scene
                idle, spare = [], None
            buf += chunk
        for child in list(busy.values()):
            if child.done_r in readable and os.read(child.done_r, 2) == b"0\n":  # b"": it died (reaped below)
                _emit(events_fd, {"event": "exit", "id": child.request, "returncode": 0,
                                  "max_rss_kb": _peak_rss_kb(child.pid)})
                child.request = None
                idle.append(busy.pop(child.pid))
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            if req["cmd"] == "run" and stdin_open:  # never a new scene once the generator is gone
                if idle:
                    child = idle.pop()
                else:  # the spare takes it; the next spare imports Blender while this scene renders
                    others = list(busy.values())
                    child = spare if spare is not None else _fork_spare(server_pid, events_fd, scenes_per_process,
                                                                        others)
                    spare = _fork_spare(server_pid, events_fd, scenes_per_process, [*others, child])
                child.request = req["id"]
                busy[child.pid] = child
                try:
                    _emit(child.jobs_w, {"job": req["job"], "log": req["log"]})
                except OSError:
                    pass  # it died before its job (an import failed): its exit is reported below
                _emit(events_fd, {"event": "started", "id": req["id"], "pid": child.pid})
            elif req["cmd"] == "kill":
                for child in busy.values():
                    if child.request == req["id"]:
                        kill_process_group(child.pid)
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if spare is not None and pid == spare.pid:  # died before it got a scene: fork another when needed
                spare.close()
                spare = None
                continue
            child = busy.pop(pid, None)
            if child is not None:
                _emit(events_fd, {"event": "exit", "id": child.request,
                                  "returncode": os.waitstatus_to_exitcode(status), "max_rss_kb": usage.ru_maxrss})
            else:
                child = next((c for c in idle if c.pid == pid), None)
                if child is not None:  # an idle process died (or the server closed its pipe)
                    idle.remove(child)
            if child is not None:
                child.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.pipeline.server", description=__doc__.split("\n")[0])
    ap.add_argument("--parent-pid", type=int, required=True, help="die when this process dies")
    ap.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE[:FUNCTION]",
                    help="module to import before serving (repeatable); :FUNCTION also calls it")
    ap.add_argument("--serving", default="", help="output folder served (shown by ps; informational)")
    ap.add_argument("--scenes-per-process", type=int, default=1, help="scenes a process renders before it exits")
    args = ap.parse_args(argv)
    if args.scenes_per_process < 1:
        ap.error(f"--scenes-per-process must be >= 1, got {args.scenes_per_process}")
    code = serve(args.imports, args.parent_pid, args.scenes_per_process)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter shutdown: tearing down Blender, TensorFlow and friends takes seconds and helps nobody.
    os._exit(code)


if __name__ == "__main__":
    main()
