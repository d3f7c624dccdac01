"""The RotoBridge operators: the panel's buttons and the click tool, on the active clip.

The active clip is the Movie Clip Editor's, else the scene's active clip. Every operator
returns at once: bridge work runs on the controller's thread and its results come back
through the add-on's timer. Errors from the host side go to `Controller.report`, the one
place they become UI.
"""

import math
from typing import Any, Callable

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatVectorProperty, StringProperty

from rotobridge.host import CANCELLING, PROPAGATING
from rotobridge.errors import RotobridgeError

from . import adapter, local_bridge, overlay

_DIRECTIONS = [("both", "Both ways", ""), ("forward", "Forward", ""), ("backward", "Backward", "")]
#: A drag longer than this (region pixels) makes a box instead of a point.
DRAG_PIXELS = 6.0


def active_clip(context: Any) -> bpy.types.MovieClip | None:
    space = getattr(context, "space_data", None)
    clip = getattr(space, "clip", None) if space is not None and space.type == "CLIP_EDITOR" else None
    return clip or context.scene.active_clip


def run(operator: bpy.types.Operator, context: Any, action: Callable[[adapter.BlenderHost], None]) -> set[str]:
    """Run `action` on the active clip's host; host-side errors reach the artist like any other."""
    clip = active_clip(context)
    if clip is None:
        operator.report({"ERROR"}, "RotoBridge: open a movie clip in the Movie Clip Editor first")
        return {"CANCELLED"}
    host = adapter.host_for(clip)
    try:
        action(host)
    except RotobridgeError as exc:
        host.controller.report(exc)
        return {"CANCELLED"}
    return {"FINISHED"}


class _ClipOperator(bpy.types.Operator):
    @classmethod
    def poll(cls, context: Any) -> bool:
        return active_clip(context) is not None


def _button(name: str, label: str, doc: str, action: Callable[[adapter.BlenderHost], None]) -> type:
    """An operator that runs one action on the active clip's host."""

    def execute(self: bpy.types.Operator, context: Any) -> set[str]:
        return run(self, context, action)

    attributes = {"__doc__": doc, "bl_idname": f"rotobridge.{name}", "bl_label": label, "execute": execute}
    return type(f"ROTOBRIDGE_OT_{name}", (_ClipOperator,), attributes)


BUTTONS = (
    _button("connect", "Connect", "Connect to the bridge and open this clip as a shot (prompts saved with the clip are sent again)",
            lambda host: host.connect()),
    _button("disconnect", "Disconnect", "Close this clip's bridge session (prompts stay)", lambda host: host.controller.disconnect()),
    _button("object_remove", "Remove Object", "Remove the active object and its clicks",
            lambda host: host.controller.remove_object(host.active_id())),
    _button("clear_frame", "Clear Frame", "Remove the active object's clicks on this frame",
            lambda host: host.controller.clear(host.active_id(), host.plate_frame())),
    _button("preview", "Preview", "Show the preview mattes of this frame (it must hold clicks)",
            lambda host: host.controller.preview(host.plate_frame())),
    _button("cancel", "Cancel Tracking", "Stop tracking (mattes already written stay)", lambda host: host.controller.cancel()),
    _button("dismiss", "Dismiss", "Hide the last error", lambda host: host.errors.clear()),
)


class ROTOBRIDGE_OT_start_bridge(_ClipOperator):
    """Run `rotobridge serve` on this machine (preferences: bridge, arguments) and connect once it listens"""

    bl_idname, bl_label = "rotobridge.start_bridge", "Start Local Bridge"

    def execute(self, context: Any) -> set[str]:
        prefs = adapter.preferences()

        def start(host: adapter.BlenderHost) -> None:
            if local_bridge.serving():
                host.connect()
                return
            log = local_bridge.start(bpy.path.abspath(prefs.bridge), prefs.address, prefs.bridge_arguments, bpy.app.tempdir)
            host.connect_pending = True
            self.report({"INFO"}, f"RotoBridge: starting the bridge (log: {log})")

        return run(self, context, start)


class ROTOBRIDGE_OT_stop_bridge(bpy.types.Operator):
    """Stop the bridge this Blender started"""

    bl_idname, bl_label = "rotobridge.stop_bridge", "Stop Local Bridge"

    def execute(self, context: Any) -> set[str]:
        local_bridge.stop()
        return {"FINISHED"}


class ROTOBRIDGE_OT_object_add(_ClipOperator):
    """Add an object: its name becomes the matte layer's name"""

    bl_idname, bl_label = "rotobridge.object_add", "Add Object"
    name: StringProperty(name="Name", default="")

    def execute(self, context: Any) -> set[str]:
        def add(host: adapter.BlenderHost) -> None:
            taken = {o.name for o in host.controller.prompts.objects}
            name = self.name.strip() or next(f"object{i}" for i in range(1, 1000) if f"object{i}" not in taken)
            host.add_object(name)

        return run(self, context, add)


class ROTOBRIDGE_OT_add_point(_ClipOperator):
    """Add a click for the active object on this frame"""

    bl_idname, bl_label = "rotobridge.add_point", "Add Point"
    location: FloatVectorProperty(name="Location", size=2, description="Clip pixels from the bottom-left corner")
    negative: BoolProperty(name="Negative", description="Not part of the object")

    def execute(self, context: Any) -> set[str]:
        return run(self, context, lambda host: host.click(tuple(self.location), not self.negative))


class ROTOBRIDGE_OT_set_box(_ClipOperator):
    """Set the active object's box on this frame"""

    bl_idname, bl_label = "rotobridge.set_box", "Set Box"
    corner: FloatVectorProperty(name="Corner", size=2, description="Clip pixels from the bottom-left corner")
    other: FloatVectorProperty(name="Opposite Corner", size=2)

    def execute(self, context: Any) -> set[str]:
        return run(self, context, lambda host: host.set_box(tuple(self.corner), tuple(self.other)))


class ROTOBRIDGE_OT_click_tool(bpy.types.Operator):
    """Click on the object: click = positive point, Ctrl/Shift+click = negative, drag = box. Esc or right-click ends"""

    bl_idname, bl_label = "rotobridge.click_tool", "Click Tool"

    @classmethod
    def poll(cls, context: Any) -> bool:
        space = context.space_data
        return space is not None and space.type == "CLIP_EDITOR" and space.clip is not None

    def invoke(self, context: Any, event: Any) -> set[str]:
        self._press = None  # where the button went down (region pixels)
        context.window_manager.modal_handler_add(self)
        context.area.header_text_set("RotoBridge: click = point, Ctrl/Shift+click = negative, drag = box; Esc ends")
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> set[str]:
        if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            context.area.header_text_set(None)
            return {"FINISHED"}
        inside = 0 <= event.mouse_region_x < context.region.width and 0 <= event.mouse_region_y < context.region.height
        if event.type != "LEFTMOUSE" or not (inside or self._press):
            return {"PASS_THROUGH"}  # navigation and the rest of the UI keep working
        here = (event.mouse_region_x, event.mouse_region_y)
        if event.value == "PRESS":
            self._press = here
        elif event.value == "RELEASE" and self._press is not None:
            start, self._press = self._press, None
            corner, other = self._clip_xy(context, start), self._clip_xy(context, here)
            if math.dist(start, here) > DRAG_PIXELS:
                bpy.ops.rotobridge.set_box(corner=corner, other=other)
            else:
                bpy.ops.rotobridge.add_point(location=other, negative=event.ctrl or event.shift)
        return {"RUNNING_MODAL"}

    @staticmethod
    def _clip_xy(context: Any, region_xy: tuple[int, int]) -> tuple[float, float]:
        view = context.region.view2d.region_to_view(*region_xy)
        return overlay.view_to_clip(view, tuple(context.space_data.clip.display_aspect))


class ROTOBRIDGE_OT_propagate(_ClipOperator):
    """Track the clicks over the clip and write the mattes (Esc cancels)"""

    bl_idname, bl_label = "rotobridge.propagate", "Track"
    direction: EnumProperty(name="Direction", items=_DIRECTIONS, default="both")

    def execute(self, context: Any) -> set[str]:
        return run(self, context, lambda host: host.propagate(self.direction))

    def invoke(self, context: Any, event: Any) -> set[str]:
        if self.execute(context) != {"FINISHED"}:
            return {"CANCELLED"}
        self._clip = active_clip(context)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> set[str]:
        host = adapter.find_host(self._clip)
        if host is None or host.controller.state not in {PROPAGATING, CANCELLING}:
            return {"FINISHED"}
        if event.type == "ESC" and event.value == "PRESS":
            host.controller.cancel()
            return {"RUNNING_MODAL"}
        return {"PASS_THROUGH"}


class ROTOBRIDGE_OT_export_recipe(_ClipOperator):
    """Write the recipe of this shot: rerender the mattes anywhere with `rotobridge render`"""

    bl_idname, bl_label = "rotobridge.export_recipe", "Export Recipe"
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def invoke(self, context: Any, event: Any) -> set[str]:
        if not self.filepath:
            clip = active_clip(context)
            self.filepath = f"{bpy.path.clean_name(clip.name if clip else 'shot')}.recipe.json"
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        path = bpy.path.abspath(self.filepath)

        def export(host: adapter.BlenderHost) -> None:
            if host.controller.export_recipe(path) is not None:
                self.report({"INFO"}, f"RotoBridge: recipe written: {path} (render it with: rotobridge render {path})")

        return run(self, context, export)


class ROTOBRIDGE_OT_report(bpy.types.Operator):
    """Show a RotoBridge message in the status bar and the Info log"""

    bl_idname, bl_label = "rotobridge.report", "RotoBridge Message"
    bl_options = {"INTERNAL"}
    level: StringProperty(default="INFO")
    message: StringProperty()

    def execute(self, context: Any) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


CLASSES = (
    *BUTTONS,
    ROTOBRIDGE_OT_start_bridge,
    ROTOBRIDGE_OT_stop_bridge,
    ROTOBRIDGE_OT_object_add,
    ROTOBRIDGE_OT_add_point,
    ROTOBRIDGE_OT_set_box,
    ROTOBRIDGE_OT_click_tool,
    ROTOBRIDGE_OT_propagate,
    ROTOBRIDGE_OT_export_recipe,
    ROTOBRIDGE_OT_report,
)
