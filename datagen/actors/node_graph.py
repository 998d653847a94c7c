"""Procedural Blender materials as small node graphs (``NodeGraph``), shared by the people's materials, the
animals' coats and the floors. Textures are looked up in a mesh's rest-position attribute, so they stick to a
deforming surface, or in whatever coordinates a caller links to their ``vector`` (the floors: world position)."""
from __future__ import annotations

import numpy as np

# Blender's wave texture computes sin(20 * coordinate) (bands/rings): this mapping scale gives one
# period per 1/r metres for r repeats per metre.
WAVE_PERIOD = 2.0 * np.pi / 20.0


class NodeGraph:
    """Small helper around a new material's node tree; procedural textures look up ``rest_attribute`` (the mesh's
    rest-position point attribute, so they stick to a deforming surface). Used by the people's
    materials (humans/materials.py), the animals' coats (coats.py) and the floors (scene/floors.py).

    ``planar``: noise and Voronoi textures are 2-D (for a flat surface they look the same as 3-D ones and shade much
    faster: a Voronoi texture visits 9 cells instead of 27)."""

    def __init__(self, bpy, name: str, rest_attribute: str = "rest", planar: bool = False):
        self.rest_attribute, self.planar = rest_attribute, planar
        self.mat = bpy.data.materials.new(name)
        self.mat.use_nodes = True
        self.nodes, self.links = self.mat.node_tree.nodes, self.mat.node_tree.links
        self.bsdf = self.nodes["Principled BSDF"]
        self._rest = None

    def node(self, kind: str, vector=None, **inputs):
        """A new node of ``kind`` with its inputs set (``Mortar_Size`` names the socket "Mortar Size") and the
        ``vector`` socket, if given, linked to its Vector input."""
        n = self.nodes.new(kind)
        if self.planar and kind == "ShaderNodeTexNoise":
            n.noise_dimensions = "2D"
        elif self.planar and kind == "ShaderNodeTexVoronoi":
            n.voronoi_dimensions = "2D"
        for k, v in inputs.items():
            n.inputs[k.replace("_", " ")].default_value = v
        if vector is not None:
            self.link(vector, n.inputs["Vector"])
        return n

    def link(self, a, b):
        self.links.new(a, b)

    def rest(self):
        """Output socket of the rest-position attribute (metres)."""
        if self._rest is None:
            self._rest = self.vector_attribute(self.rest_attribute)
        return self._rest

    def scaled_rest(self, scale):
        return self.scaled(self.rest(), scale)

    def scaled(self, vector, scale):
        """The socket ``vector`` scaled per axis (a float or a triple)."""
        m = self.node("ShaderNodeMapping")
        m.inputs["Scale"].default_value = scale if isinstance(scale, (tuple, list)) else (scale,) * 3
        self.link(vector, m.inputs["Vector"])
        return m.outputs["Vector"]

    def vector_attribute(self, name: str):
        """Vector output of the mesh's point attribute ``name``."""
        a = self.nodes.new("ShaderNodeAttribute")
        a.attribute_type = "GEOMETRY"
        a.attribute_name = name
        return a.outputs["Vector"]

    def noise(self, scale, detail=4.0, roughness=0.5):
        """Noise on the rest position with `scale` features per metre (a float or per-axis triple) -> Fac."""
        return self.noise_at(self.scaled_rest(scale), 1.0, detail, roughness)

    def noise_at(self, vector, scale: float, detail: float = 4.0, roughness: float = 0.5):
        """Noise texture at the coordinates `vector` (a socket) with `scale` features per unit -> Fac."""
        return self.node("ShaderNodeTexNoise", vector=vector, Scale=scale, Detail=detail,
                         Roughness=roughness).outputs["Fac"]

    def mix(self, fac, a, b, blend: str = "MIX"):
        """Colour a -> b by fac (socket or float); a, b: colour sockets or linear RGB tuples; `blend`: Blender's
        blend mode (MULTIPLY: a x b at fac 1)."""
        m = self.nodes.new("ShaderNodeMix")
        m.data_type, m.blend_type = "RGBA", blend
        self._set(m.inputs[0], fac)
        self._set(m.inputs[6], a)
        self._set(m.inputs[7], b)
        return m.outputs[2]

    def math(self, op, a, b=0.0):
        m = self.nodes.new("ShaderNodeMath")
        m.operation = op
        self._set(m.inputs[0], a)
        self._set(m.inputs[1], b)
        return m.outputs[0]

    def ramp(self, fac, stops):
        """Colour ramp from [(position, linear RGB or RGBA), ...] -> (colour socket, ramp node)."""
        r = self.nodes.new("ShaderNodeValToRGB")
        self._set(r.inputs["Fac"], fac)
        els = r.color_ramp.elements
        while len(els) < len(stops):
            els.new(0.5)
        for el, (pos, rgb) in zip(els, stops):
            el.position = pos
            el.color = (*rgb[:3], 1.0)
        return r.outputs["Color"], r

    def gray(self, color):
        """A colour socket's luminance -> float socket."""
        node = self.nodes.new("ShaderNodeRGBToBW")
        self.link(color, node.inputs["Color"])
        return node.outputs["Val"]

    def attribute(self, name: str):
        """Float output of the mesh's point attribute ``name``."""
        return self.vector_attribute(name).node.outputs["Fac"]

    def smoothstep(self, value, lo: float, hi: float):
        """0 below lo, 1 above hi, smooth in between."""
        m = self.nodes.new("ShaderNodeMapRange")
        m.interpolation_type = "SMOOTHSTEP"
        m.inputs["From Min"].default_value, m.inputs["From Max"].default_value = lo, hi
        self.link(value, m.inputs["Value"])
        return m.outputs["Result"]

    def bump(self, height, strength, distance: float = 0.002):
        """Bump from ``height``; a second call stacks on the first (its normal feeds the next)."""
        b = self.node("ShaderNodeBump", Strength=strength, Distance=distance)
        self.link(height, b.inputs["Height"])
        if self.bsdf.inputs["Normal"].is_linked:
            self.link(self.bsdf.inputs["Normal"].links[0].from_socket, b.inputs["Normal"])
        self.link(b.outputs["Normal"], self.bsdf.inputs["Normal"])

    def finish(self, color, roughness, specular: float = 0.5):
        """The material with ``color`` and ``roughness`` (values or sockets) on its Principled BSDF."""
        self._set(self.bsdf.inputs["Base Color"], color)
        self._set(self.bsdf.inputs["Roughness"], roughness)
        self.bsdf.inputs["Specular IOR Level"].default_value = specular
        return self.mat

    def _set(self, socket, value):
        if hasattr(value, "is_linked"):  # a node socket
            self.link(value, socket)
        elif isinstance(value, (tuple, list, np.ndarray)):
            v = tuple(float(x) for x in value)
            socket.default_value = (*v, 1.0) if len(socket.default_value) == 4 and len(v) == 3 else v
        else:
            socket.default_value = float(value)
