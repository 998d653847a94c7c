"""The ground floor under tracker, datagen and lightning_modules: errors, atomic writes,
pixel rescaling, config loading, the Prediction type. Standard library, numpy and (config loading only) omegaconf:
no torch."""
