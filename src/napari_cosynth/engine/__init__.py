"""The torch side of napari-cosynth: the joint diffusion model, its conditioning, diffusion,
samplers, checkpoints and training.

Only this package imports torch (and diffusers / open_clip). Nothing is imported here so that
``import napari_cosynth.engine.config`` stays light; import the modules you need:
``engine.config`` (run configuration), ``engine.text`` (tokenizer and text tower), ``engine.model``
(``CoSynNet``), ``engine.checkpoint`` (save / load / resolve models), and the diffusion, sampler and
training modules beside them.
"""
