"""Warm scene server: imports bpy/Kubric/TensorFlow once, then forks one child process per scene.

    python -m datagen.scene_server --parent-pid PID [--import MODULE[:FUNCTION] ...] [--serving OUT]

Started by datagen.generate (generate.scene_process=warm). A scene still gets a process of its own, created by
fork() from this server, which never builds a scene itself: every child starts from the same state a fresh
interpreter has after the same imports, so nothing of one scene's Blender state can reach another, and a scene
pays milliseconds instead of the ~5-15 s of interpreter start and imports.

Protocol (JSON lines): requests on stdin, events on the original stdout (fd 1 is pointed at stderr, the server
log, so that whatever imported libraries print cannot corrupt the event stream):
  -> {"cmd": "run", "id": N, "job": JOB.json, "log": LOG}   fork a child that runs datagen.scene_worker on JOB
  -> {"cmd": "kill", "id": N}                              SIGKILL the child's process group (timeouts)
  <- {"event": "ready", "pid": P, "import_s": S, "threads": K}  once the imports are done
  <- {"event": "error", "message": M}                      the imports failed (the server then exits)
  <- {"event": "started", "id": N, "pid": P}
  <- {"event": "exit", "id": N, "returncode": R, "max_rss_kb": M}  R < 0: killed by signal -R
End of stdin (the generator closed it or died) kills every child and ends the server.

Fork safety: the server starts no thread of its own, but imported libraries do. Two matter:
  * OpenEXR's global thread pool (started by bpy): after fork() its worker threads do not exist in the child and
    the first EXR Blender writes would wait for them forever. The server empties the pool before forking and each
    child refills it (Imf::setGlobalThreadCount through ctypes);
  * a GPU driver context must not be created before fork(): GPUs are only ever enumerated inside a child
    (datagen.cycles_device), never here.
OpenBLAS re-creates its threads after fork by itself; Cycles' and TBB's render threads are started by the child
(measured: the same CPU time off the main thread as a fresh process, and bit-identical renders).
Dying: the server dies with its parent (parent-death signal) and so do its children with it.
"""
from __future__ import annotations

import argparse
import ctypes
import importlib
import json
import os
import select
import sys
import time
import traceback

from datagen.errors import one_line
from datagen.scene_worker import kill_process_group, run_scene_job, set_parent_death_signal

_EXR_NAMESPACES = [f"Imf_{major}_{minor}" for major in (3, 2) for minor in range(9, -1, -1)] + ["Imf"]


class _ExrThreads:
    """Blender's OpenEXR global thread count, read and set through ctypes (mangled C++ names, so every
    namespace version that could be loaded is tried)."""

    def __init__(self):
        self.get = self.set = None
        paths = sorted({line.split()[-1] for line in open("/proc/self/maps") if "libOpenEXR" in line
                        and "Core" not in line and line.split()[-1].startswith("/")})
        for path in paths:
            lib = ctypes.CDLL(path)
            for ns in _EXR_NAMESPACES:
                try:
                    get = getattr(lib, f"_ZN{len(ns)}{ns}17globalThreadCountEv")
                    put = getattr(lib, f"_ZN{len(ns)}{ns}20setGlobalThreadCountEi")
                except AttributeError:
                    continue
                get.restype, put.argtypes = ctypes.c_int, [ctypes.c_int]
                self.get, self.set = get, put
                return
        if paths:
            raise RuntimeError(f"cannot find OpenEXR's setGlobalThreadCount in {paths}: forking Blender is unsafe")


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


def _child(job: str, log: str, server_pid: int, events_fd: int, exr: _ExrThreads, exr_threads: int) -> None:
    """In the forked child: become the scene process (own session, log as stdout/stderr), run the job, exit."""
    code = 1
    try:
        os.setsid()  # own process group: a timeout kills everything the scene started
        set_parent_death_signal(server_pid)
        os.close(events_fd)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        if exr.set is not None:
            exr.set(exr_threads)
        import faulthandler

        faulthandler.enable()
        code = run_scene_job(job)
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


def serve(specs: list[str], parent_pid: int) -> int:
    events_fd = os.dup(1)
    os.set_inheritable(events_fd, False)
    os.dup2(2, 1)  # library chatter on stdout goes to the server log, not into the event stream
    set_parent_death_signal(parent_pid)
    t0 = time.perf_counter()
    try:
        _import_all(specs)
        exr = _ExrThreads()
    except BaseException as err:
        traceback.print_exc()
        _emit(events_fd, {"event": "error", "message": f"{type(err).__name__}: {one_line(str(err))}"[:500]})
        return 1
    exr_threads = 0
    if exr.get is not None:
        exr_threads = exr.get()
        exr.set(0)  # joins the pool's threads here, so that no child inherits a pool without threads
    _emit(events_fd, {"event": "ready", "pid": os.getpid(), "import_s": time.perf_counter() - t0,
                      "threads": len(os.listdir("/proc/self/task"))})
    children: dict[int, int] = {}  # pid -> request id
    server_pid = os.getpid()
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
                buf += chunk
        else:
            time.sleep(0.02)
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            req = json.loads(line)
            if req["cmd"] == "run" and stdin_open:  # never a new scene once the generator is gone
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(req["job"], req["log"], server_pid, events_fd, exr, exr_threads)
                children[pid] = req["id"]
                _emit(events_fd, {"event": "started", "id": req["id"], "pid": pid})
            elif req["cmd"] == "kill":
                for pid, rid in children.items():
                    if rid == req["id"]:
                        kill_process_group(pid)
        while children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            rid = children.pop(pid, None)
            if rid is not None:
                _emit(events_fd, {"event": "exit", "id": rid, "returncode": os.waitstatus_to_exitcode(status),
                                  "max_rss_kb": usage.ru_maxrss})
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.scene_server", description=__doc__.split("\n")[0])
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
