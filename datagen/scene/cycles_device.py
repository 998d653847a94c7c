"""Which device Cycles renders a scene on (`scene.render_device: auto|cpu|gpu`), and exact GT-pass settings.

Runs inside a scene process only, after Kubric's renderer reset Blender (`read_factory_settings` also resets the
Cycles preferences). Enumerating GPUs initialises the GPU driver (CUDA/HIP): that must never happen in the warm
scene server, whose forked children could not use a driver context created before the fork.

  auto  a GPU when Cycles finds one (OptiX, then CUDA, HIP, oneAPI, Metal), else the CPU
  cpu   always the CPU
  gpu   a GPU, or RenderDeviceError (the generator stops: every scene would fail the same way)

With several GPUs, scene slot `gpu_slot` (the generator's worker index) renders on GPU `gpu_slot mod n`, so the
workers of one node spread over its GPUs (CUDA_VISIBLE_DEVICES still restricts what Cycles sees).

`python -m datagen.scene.cycles_device` prints the GPUs Cycles finds on this machine.
"""
from __future__ import annotations

import sys

RENDER_DEVICES = ("auto", "cpu", "gpu")
GPU_BACKENDS = ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL")  # preference order (OptiX: RTX hardware ray tracing)
# _cycles.get_device_types() answers these flags in this order (Blender 4.2).
_DEVICE_TYPE_FLAGS = ("CUDA", "OPTIX", "HIP", "METAL", "ONEAPI", "HIPRT")


class RenderDeviceError(RuntimeError):
    """The requested render device does not exist on this machine."""


def _cycles_prefs():
    import bpy

    return bpy.context.preferences.addons["cycles"].preferences


def find_gpus() -> tuple[str, list]:
    """(backend, [device entries]) of the first backend in GPU_BACKENDS with a device; ("", []) if none."""
    import bpy  # noqa: F401  (loads the Cycles add-on, which provides _cycles)
    import _cycles

    compiled = dict(zip(_DEVICE_TYPE_FLAGS, _cycles.get_device_types()))
    prefs = _cycles_prefs()
    for backend in GPU_BACKENDS:
        if not compiled.get(backend):
            continue
        devices = [d for d in prefs.get_devices_for_type(backend) if d.type == backend]
        if devices:
            return backend, devices
    return "", []


def setup(scene, requested: str, gpu_slot: int | None = None) -> str:
    """Point Cycles of `scene` (a bpy Scene) at the requested device; returns what it renders on ("CPU", "OPTIX",
    "CUDA", ...). Denoising (if enabled in the scene) runs on the same device."""
    if requested not in RENDER_DEVICES:
        raise RenderDeviceError(f"scene.render_device must be one of {', '.join(RENDER_DEVICES)}, got {requested!r}")
    cycles = scene.cycles
    if requested == "cpu":
        cycles.device = "CPU"
        return "CPU"
    backend, devices = find_gpus()
    if not devices:
        if requested == "gpu":
            raise RenderDeviceError("scene.render_device=gpu but Cycles finds no GPU (tried "
                                    f"{', '.join(GPU_BACKENDS)}); use scene.render_device=auto or cpu")
        cycles.device = "CPU"
        return "CPU"
    prefs = _cycles_prefs()
    prefs.compute_device_type = backend
    chosen = devices[(gpu_slot or 0) % len(devices)]
    for d in prefs.devices:  # exactly one GPU per scene process, and not the CPU next to it
        d.use = d.id == chosen.id and d.type == backend
    cycles.device = "GPU"
    cycles.denoising_use_gpu = True
    return backend


def prepare_gt_pass(scene) -> None:
    """Call before the 1-spp ground-truth render (depth, segmentation, flow at pixel centres).

    Denoising would only touch the colour pass, and adaptive sampling cannot adapt one sample, but both are
    switched off so that the GT pass is the same plain single sample whatever the RGB pass used (and no
    denoiser runs on a pass nobody looks at).
    """
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    for layer in scene.view_layers:
        layer.cycles.use_denoising = False


def main() -> int:
    backend, devices = find_gpus()
    if not devices:
        print("Cycles finds no GPU: scenes render on the CPU (scene.render_device=auto)")
        return 1
    print(f"Cycles renders on {backend}: " + ", ".join(f"[{i}] {d.name}" for i, d in enumerate(devices)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
