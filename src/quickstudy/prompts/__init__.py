"""Prompt encodings (SuperNI's reference layout) and token ids: the second stage of the pipeline."""
