"""Real people for the synthetic scenes: skinned, deforming, textured `anny` bodies (no Blender at import).

Modules, each with one job (data flows top to bottom):

* ``body``: the one `anny` model TrackForge uses (its cache, built once with a progress bar), random
  phenotypes, rest geometry, UVs, per-frame skinning (T, V, 3) vectorised in torch.
* ``bvh``: a small BVH reader/writer with forward kinematics.
* ``deepmimic``: the DeepMimic humanoid clips of pybullet_data and their pybullet forward kinematics.
* ``retarget``: motion sources (the DeepMimic clips of pybullet_data, BVH files) -> anny bone
  world orientations, by swinging each anny bone onto the source's bone direction.
* ``face``: facial-expression tracks over time (face units), blinks, gaze and head motion.
* ``regions``: per-polygon region labels (face, skin, hair, top, bottom, shoes, eyes, lips), per-vertex
  paint (brows, hairline, lash lines) and random outfits.
* ``hair``: hair geometry at rest (a shell over the scalp, a curtain for long hair, a bun) with skin weights.
* ``materials``: Blender materials (procedural skin tones, fabric and hair textures that stick to the
  surface through UV / rest-position coordinates).
* ``actor``: ``pose_human`` (numpy/torch only: everything about one person, per-frame vertices, on the floor
  with planted feet) and ``add_human_object`` (the Blender mesh with one shape key per frame).

See docs/datagen_actors.md for conventions, licences and measured costs.
"""
