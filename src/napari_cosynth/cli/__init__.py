"""The ``cosynth`` command line (entry point ``napari_cosynth.cli.main:run``): argument parsing only;
every subcommand calls the core.

``main.py`` builds the parser; ``flags.py`` holds the flags several subcommands share (argparse parent
parsers); ``console.py`` the progress bar and result printing; one module per command family registers
its subcommands (generate, bulk, evaluate, downstream, segmenter, layouts).
"""
