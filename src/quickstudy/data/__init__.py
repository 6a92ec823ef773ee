"""Task collections, splits and sampling: the first stage of the pipeline."""
