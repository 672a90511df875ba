"""Training the joint model: crops, the training loop (one process or torchrun), run state on disk."""
