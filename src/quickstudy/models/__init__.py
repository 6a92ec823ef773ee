"""Models: specs, loading and saving, tiny offline models, LoRA."""
