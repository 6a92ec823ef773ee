"""Studies: one YAML describes the whole grid; plan it, run it, resume it, locally or on Ray."""
