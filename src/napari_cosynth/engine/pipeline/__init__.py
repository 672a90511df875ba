"""From points and a prompt to pairs: generation and re-synthesis with a loaded model."""
