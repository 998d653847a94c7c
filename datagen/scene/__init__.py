"""One scene: build it in Kubric/Blender, render it, annotate its point tracks."""
