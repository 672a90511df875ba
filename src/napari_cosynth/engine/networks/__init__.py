"""The networks: CoSynNet (diffusers UNet + point encoder + heads), the text tower, weights on disk."""
