"""Evaluation: generation, prediction files and SuperNI's official metrics."""
