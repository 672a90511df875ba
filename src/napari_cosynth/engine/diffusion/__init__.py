"""Diffusion: the noise schedule, Gaussian and categorical processes, the joint loss and the samplers.

Imports nothing itself, so that the torch-free :mod:`.sampler_names` stays cheap to import.
"""
