"""Warm scene server: imports Kubric/TensorFlow/PyTorch once, then forks one child process per scene.

    python -m datagen.pipeline.server --parent-pid PID [--import MODULE[:FUNCTION] ...] [--serving OUT]

Started by datagen.pipeline.generate (generate.scene_process=warm). A scene still gets a process of its own, created by
fork() from this server, which never builds a scene itself: every child starts from the same state a fresh
interpreter has after the same imports, so nothing of one scene's Blender state can reach another, and a scene
pays milliseconds instead of the ~5-15 s of interpreter start and imports. The process of the next scene is forked
ahead of time (a "spare"): it imports its own Blender while the current scene renders, then waits for its one job
(it costs one idle process's memory, ~0.3 GB, next to each rendering scene).

Protocol (JSON lines): requests on stdin, events on the original stdout (fd 1 is pointed at stderr, the server
log, so that whatever imported libraries print cannot corrupt the event stream):
  -> {"cmd": "run", "id": N, "job": JOB.json, "log": LOG}   fork a child that runs datagen.pipeline.worker on JOB
  -> {"cmd": "kill", "id": N}                              SIGKILL the child's process group (timeouts)
  <- {"event": "ready", "pid": P, "import_s": S, "threads": K}  once the imports are done
  <- {"event": "error", "message": M}                      the imports failed (the server then exits)
  <- {"event": "started", "id": N, "pid": P}
  <- {"event": "exit", "id": N, "returncode": R, "max_rss_kb": M}  R < 0: killed by signal -R
End of stdin (the generator closed it or died) kills every child and ends the server.

Fork safety: the server starts no thread of its own, but imported libraries do, and fork() copies none of them.
  * Blender (bpy) is never imported here: its TBB thread pool and OpenEXR's thread pool do not survive fork, so a
    child forked after `import bpy` renders on one thread (measured 2.49 s instead of 1.36 s of wall time for the
    same render on 2 cores, with the same CPU time) and could wait for ever on EXR threads that do not exist. Each
    child imports bpy itself (~0.4 s with Kubric's renderer, hidden by the spare); a `--import` that pulls bpy in
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


def _spare(server_pid: int, events_fd: int, jobs_r: int, jobs_w: int, ready_w: int | None) -> None:
    """In a forked child, ahead of its scene: own session, its own Blender imported (while the previous scene still
    renders; then one byte on `ready_w` if the server waits for it), then wait for its one job on `jobs_r`, run it with the job's log as
    stdout/stderr, and exit."""
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
        with os.fdopen(jobs_r, "rb") as jobs:
            line = jobs.readline()  # the server writes one line or closes the pipe; if it dies, so do we
        if not line:
            os._exit(0)  # the server shut down before this process got a scene
        req = json.loads(line)
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        import faulthandler

        faulthandler.enable()
        code = run_scene_job(req["job"])
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


def _fork_spare(server_pid: int, events_fd: int, wait_ready_s: float = 0.0) -> tuple[int, int]:
    """Fork the process of the next scene (see _spare) -> (its pid, the write end of its job pipe). With
    wait_ready_s, wait up to that long until it has imported Blender (or died)."""
    jobs_r, jobs_w = os.pipe()
    ready_r, ready_w = os.pipe() if wait_ready_s > 0 else (None, None)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        if ready_r is not None:
            os.close(ready_r)
        _spare(server_pid, events_fd, jobs_r, jobs_w, ready_w)
    os.close(jobs_r)
    if ready_r is not None:
        os.close(ready_w)
        if select.select([ready_r], [], [], wait_ready_s)[0]:
            os.read(ready_r, 1)  # b"." when ready, b"" when it died first (its job will report the failure)
        os.close(ready_r)
    return pid, jobs_w


def serve(specs: list[str], parent_pid: int) -> int:
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
    # (pid, job pipe) of the next scene's process. The first one has imported Blender before the server reports
    # ready, so that the first scene does not wait for it either (its import is part of the server's start).
    spare: tuple[int, int] | None = _fork_spare(server_pid, events_fd, wait_ready_s=SPARE_READY_WAIT_S)
    _emit(events_fd, {"event": "ready", "pid": os.getpid(), "import_s": time.perf_counter() - t0,
                      "threads": threads})
    children: dict[int, int] = {}  # pid -> request id
    buf = b""
    stdin_open = True
    while stdin_open or children:
        if stdin_open:
            readable, _, _ = select.select([0], [], [], 0.02)
            if readable:
                chunk = os.read(0, 65536)
                if not chunk:  # the generator is gone or done: no scene may outlive it
                    stdin_open = False
                    for pid in children:
                        kill_process_group(pid)
                    if spare is not None:  # EOF on its pipe: it exits without a scene
                        os.close(spare[1])
                        spare = None
                buf += chunk
        else:
            time.sleep(0.02)
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            if req["cmd"] == "run" and stdin_open:  # never a new scene once the generator is gone
                pid, jobs_w = spare if spare is not None else _fork_spare(server_pid, events_fd)
                children[pid] = req["id"]
                try:
                    _emit(jobs_w, {"job": req["job"], "log": req["log"]})
                except OSError:
                    pass  # it died before its job (an import failed): its exit is reported below
                os.close(jobs_w)
                _emit(events_fd, {"event": "started", "id": req["id"], "pid": pid})
                # The next scene's process imports Blender while this one renders (a fresh process per scene
                # still: a spare only ever runs one job).
                spare = _fork_spare(server_pid, events_fd)
            elif req["cmd"] == "kill":
                for pid, rid in children.items():
                    if rid == req["id"]:
                        kill_process_group(pid)
        while children or spare is not None:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if spare is not None and pid == spare[0]:  # died before it got a scene: fork another when needed
                os.close(spare[1])
                spare = None
                continue
            rid = children.pop(pid, None)
            if rid is not None:
                _emit(events_fd, {"event": "exit", "id": rid, "returncode": os.waitstatus_to_exitcode(status),
                                  "max_rss_kb": usage.ru_maxrss})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.pipeline.server", description=__doc__.split("\n")[0])
    ap.add_argument("--parent-pid", type=int, required=True, help="die when this process dies")
    ap.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE[:FUNCTION]",
                    help="module to import before serving (repeatable); :FUNCTION also calls it")
    ap.add_argument("--serving", default="", help="output folder served (shown by ps; informational)")
    args = ap.parse_args(argv)
    code = serve(args.imports, args.parent_pid)
    sys.stdout.flush()
    sys.stderr.flush()
    # No interpreter shutdown: tearing down Blender, TensorFlow and friends takes seconds and helps nobody.
    os._exit(code)


if __name__ == "__main__":
    main()
