"""The scene processes' temp folder ($TMPDIR), one per generator run.

Blender makes a session folder (blender_XXXXXX) in $TMPDIR when it starts and removes it only on a normal exit; scene
processes end with os._exit or are killed, so in the system's temp folder theirs would pile up. The generator gives
them a folder of its own, under the system's temp folder (not the output, which may be a network file system), and
removes it when it ends (`remove_scene_process_tmp`, called by datagen.pipeline.generate).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

PROCESS_TMP_PREFIX = "trackforge-scenes-"


def scene_process_tmp() -> Path:
    """A new temp folder for this generator's scene processes, `trackforge-scenes-<pid>-XXXX` in the system's temp
    folder; first removes those of generators that were killed (SIGKILL: no cleanup ran), i.e. whose pid is gone and
    that nothing touched for an hour (a pid from another pid namespace sharing /tmp is not taken for dead so soon)."""
    base = Path(tempfile.gettempdir())
    for old in base.glob(f"{PROCESS_TMP_PREFIX}*-*"):
        pid = old.name[len(PROCESS_TMP_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or time.time() - old.stat().st_mtime < 3600:
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except OSError:  # gone meanwhile, or a process of another user (alive)
            continue
    return Path(tempfile.mkdtemp(prefix=f"{PROCESS_TMP_PREFIX}{os.getpid()}-"))


def remove_scene_process_tmp(folder: Path | None) -> None:
    """Remove a folder made by scene_process_tmp with everything in it (None: nothing to do); when the generator
    ends, every scene process it started has ended too."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
