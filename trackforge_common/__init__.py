"""Small helpers shared by `datagen` and `lightning_modules` (and nothing heavier than OmegaConf/PyYAML):
one-line user errors, config loading, advisory folder locks. Importable without torch, Lightning or bpy."""
