"""Training: config, the loop, length-grouped batching and the two study stages."""
