from importlib.resources import files


def test_manifest_is_shipped_and_valid():
    from npe2 import PluginManifest

    shipped = files("napari_cosynth") / "napari.yaml"
    assert shipped.is_file()
    manifest = PluginManifest.from_distribution("napari-cosynth")
    assert manifest.name == "napari-cosynth"
    # every command the manifest names must import (catches typos in python_name)
    for command in manifest.contributions.commands:
        module, _, attr = command.python_name.partition(":")
        assert callable(getattr(__import__(module, fromlist=[attr]), attr)), command.id
