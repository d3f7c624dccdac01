"""RotoBridge for Blender: click on a movie clip, get SAM 2 mattes in the compositor.

A Blender extension (module `bl_ext.<repository>.rotobridge`): the Movie Clip Editor's
sidebar tab "RotoBridge" drives a bridge (`rotobridge serve`) through the host-agnostic
controller of the `rotobridge` core. The zip bundles the core as a wheel built from
plugin/, next to pyzmq's; Blender installs both, so the core imports as `rotobridge`.
Modules: `adapter` (the controller's Host, per clip), `operators` (buttons, the click
tool), `ui` (settings, panel, preferences), `overlay` (previews drawn over the clip),
`comp` (mattes in the compositor), `local_bridge` (Start Local Bridge).
"""

import bpy

from . import adapter, local_bridge, operators, overlay, ui


@bpy.app.handlers.persistent
def _file_loading(*_: object) -> None:
    """Another file replaces this one: its clips' sessions end (prompts are in the file)."""
    adapter.release_all()


def register() -> None:
    for cls in (*ui.CLASSES, *operators.CLASSES):
        bpy.utils.register_class(cls)
    ui.register()
    overlay.register()
    bpy.app.handlers.load_pre.append(_file_loading)
    bpy.app.timers.register(adapter.tick, first_interval=adapter.TICK, persistent=True)


def unregister() -> None:
    if bpy.app.timers.is_registered(adapter.tick):
        bpy.app.timers.unregister(adapter.tick)
    bpy.app.handlers.load_pre.remove(_file_loading)
    adapter.release_all()
    local_bridge.stop()
    overlay.unregister()
    ui.unregister()
    for cls in reversed((*ui.CLASSES, *operators.CLASSES)):
        bpy.utils.unregister_class(cls)
