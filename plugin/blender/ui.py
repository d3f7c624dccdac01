"""Settings, the object list, the RotoBridge sidebar tab of the Movie Clip Editor, preferences.

A clip's settings (`clip.rotobridge`) are saved with the .blend: its objects (a mirror of
the prompt model in `clip["rotobridge_prompts"]`; renaming or recolouring one, or changing
its matte controls, edits the model), the matte path and whether to replace existing mattes. Bridge settings are
per user, in the add-on's preferences.
"""

from typing import Any

import bpy
from bpy.props import (
    BoolProperty, CollectionProperty, FloatProperty, FloatVectorProperty, IntProperty, PointerProperty, StringProperty,
)

from rotobridge.controls import MAX_RADIUS, MatteControls

from rotobridge.host import CANCELLING, PROPAGATING
from rotobridge.protocol import DEFAULT_ADDRESS

from . import adapter, comp, local_bridge
from .operators import active_clip


def _edited(item: Any, edit: str) -> None:
    """An object's name or colour changed in the list: the model follows (a refused edit reverts)."""
    host = adapter.host_for(item.id_data)
    if host.syncing:
        return
    if edit == "name":
        host.controller.rename_object(item.object_id, item.name)
    else:
        host.controller.recolour_object(item.object_id, tuple(item.colour))
    host.mirror()


def _matte_edited(item: Any) -> None:
    """An object's matte control changed in the panel: the model follows, the preview updates (a refused value reverts)."""
    host = adapter.host_for(item.id_data)
    if not host.syncing:
        host.set_matte(item)


def _control(kind: Any, name: str, description: str, **limits: Any) -> Any:
    """A matte control's property, at the control's default, editing the model when changed."""
    default = getattr(MatteControls(), name)
    label = name.replace("_", " ").title()
    return kind(name=label, description=description, default=default, update=lambda self, _: _matte_edited(self), **limits)


def _chosen(settings: Any, context: Any) -> None:
    """Another object was chosen in the list: the compositor shows its matte."""
    if 0 <= settings.active_object < len(settings.objects):
        comp.show_object(context.scene, settings.id_data, settings.objects[settings.active_object].name)


class RotoBridgeObject(bpy.types.PropertyGroup):
    name: StringProperty(name="Name", description="The matte layer's name", update=lambda self, _: _edited(self, "name"))
    object_id: IntProperty(name="Id", description="The object's SAM 2 id")
    colour: FloatVectorProperty(
        name="Colour", subtype="COLOR", size=3, min=0.0, max=1.0, default=(1.0, 0.3, 0.2),
        update=lambda self, _: _edited(self, "colour"),
    )
    #: the object's matte controls (rotobridge.controls); off: SAM 2's matte as it is
    matte_on: BoolProperty(name="Refine Matte", description="Off: SAM 2's matte as it is", update=lambda self, _: _matte_edited(self))
    refine: _control(FloatProperty, "refine", "Edge refinement strength, 0 (off) to 1", min=0.0, max=1.0)
    refine_radius: _control(FloatProperty, "refine_radius", "Colour window radius in plate pixels; 0: automatic", min=0.0, max=MAX_RADIUS)
    smoothing: _control(FloatProperty, "smoothing", "Reduce chatter: temporal smoothing strength, 0 (off) to 1; applies to tracked mattes, not the one-frame preview", min=0.0, max=1.0)
    despeckle: _control(IntProperty, "despeckle", "Islands and holes smaller than this many pixels are removed", min=0)
    clip_black: _control(FloatProperty, "clip_black", "Values at or below become 0", min=0.0, max=1.0)
    clip_white: _control(FloatProperty, "clip_white", "Values at or above become 1", min=0.0, max=1.0)
    shrink_grow: _control(FloatProperty, "shrink_grow", "Moves the edge out (positive) or in (negative), plate pixels", min=-MAX_RADIUS, max=MAX_RADIUS)
    feather: _control(FloatProperty, "feather", "Gaussian blur, plate pixels", min=0.0, max=MAX_RADIUS)


class RotoBridgeClip(bpy.types.PropertyGroup):
    objects: CollectionProperty(type=RotoBridgeObject)
    active_object: IntProperty(name="Active Object", default=0, update=lambda self, context: _chosen(self, context))
    output: StringProperty(
        name="Mattes", subtype="FILE_PATH",
        description="Matte sequence the bridge writes (#### = frame); empty: //mattes/<clip>/<clip>.####.exr",
    )
    overwrite: BoolProperty(name="Replace Existing Mattes", description="Also replace mattes this session did not write")


class ROTOBRIDGE_UL_objects(bpy.types.UIList):
    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any, active_data: Any, active_property: str, index: int = 0) -> None:
        row = layout.row(align=True)
        row.prop(item, "colour", text="")
        row.prop(item, "name", text="", emboss=False)


class ROTOBRIDGE_PT_panel(bpy.types.Panel):
    bl_space_type, bl_region_type, bl_category, bl_label = "CLIP_EDITOR", "UI", "RotoBridge", "RotoBridge"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return active_clip(context) is not None

    def draw(self, context: Any) -> None:
        layout, clip = self.layout, active_clip(context)
        host = adapter.find_host(clip)
        state = host.controller.state if host else "disconnected"
        row = layout.row(align=True)
        row.label(text=state.replace("_", " ").capitalize(), icon="LINKED" if state != "disconnected" else "UNLINKED")
        row.operator("rotobridge.connect", text="Connect" if state == "disconnected" else "Reconnect")
        row.operator("rotobridge.disconnect", text="", icon="X")
        if not local_bridge.running():
            layout.operator("rotobridge.start_bridge", icon="PLAY")
        else:
            layout.operator("rotobridge.stop_bridge", icon="PAUSE")
        if host and host.errors:
            box = layout.box()
            title, message = host.errors[-1]
            box.row().label(text=title, icon="ERROR")
            for line in _wrap(message, 48)[:6]:
                box.label(text=line)
            box.operator("rotobridge.dismiss")

        settings = clip.rotobridge
        layout.label(text="Objects")
        row = layout.row()
        row.template_list("ROTOBRIDGE_UL_objects", "", settings, "objects", settings, "active_object", rows=3)
        column = row.column(align=True)
        column.operator("rotobridge.object_add", text="", icon="ADD")
        column.operator("rotobridge.object_remove", text="", icon="REMOVE")

        if 0 <= settings.active_object < len(settings.objects):
            item = settings.objects[settings.active_object]
            box = layout.box()
            box.prop(item, "matte_on")
            column = box.column(align=True)
            column.enabled = item.matte_on
            for name in MatteControls.__dataclass_fields__:
                column.prop(item, name)

        column = layout.column(align=True)
        column.operator("rotobridge.click_tool", icon="RESTRICT_SELECT_OFF")
        row = column.row(align=True)
        row.operator("rotobridge.preview", icon="HIDE_OFF")
        row.operator("rotobridge.clear_frame", icon="TRASH")

        column = layout.column(align=True)
        column.label(text="Track")
        row = column.row(align=True)
        for direction, icon in (("backward", "TRIA_LEFT"), ("both", "ARROW_LEFTRIGHT"), ("forward", "TRIA_RIGHT")):
            row.operator("rotobridge.propagate", text=direction.capitalize(), icon=icon).direction = direction
        if host and host.tracking and state in {PROPAGATING, CANCELLING}:
            frame, done, total = host.tracking
            column.progress(factor=done / max(total, 1), text=f"frame {frame}: {done}/{total}")
        if state in {PROPAGATING, CANCELLING}:
            column.operator("rotobridge.cancel", icon="CANCEL")
        elif host and host.notice:
            column.label(text=host.notice, icon="INFO")

        layout.prop(settings, "output")
        layout.prop(settings, "overwrite")
        layout.operator("rotobridge.export_recipe", icon="EXPORT")


class RotoBridgePreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: StringProperty(name="Bridge", default=DEFAULT_ADDRESS, description="The bridge's ZeroMQ address")
    server_key: StringProperty(name="Bridge Key", subtype="FILE_PATH", description="The bridge's public key file (.key), for a remote bridge")
    client_key: StringProperty(name="Your Key", subtype="FILE_PATH", description="Your key pair file (.key_secret), for a remote bridge")
    bridge: StringProperty(
        name="Local Bridge", subtype="FILE_PATH",
        description="For Start Local Bridge: the bridge's venv folder (install/setup.sh makes .venv) or its rotobridge program",
    )
    bridge_arguments: StringProperty(name="Serve Arguments", description="Extra `rotobridge serve` arguments, e.g. --model sam2.1-hiera-small")
    ocio_config: StringProperty(
        name="OCIO Config for the Bridge",
        description="The OCIO config the bridge should use, with clip colour spaces as named here; "
        "empty: $OCIO, else Blender's built-in names mapped to ocio://studio-config-latest",
    )
    host_root: StringProperty(name="Blender Path", description="Path mapping: this folder as Blender sees it…")
    bridge_root: StringProperty(name="Bridge Path", description="…is this folder on the bridge's machine")

    def draw(self, context: Any) -> None:
        layout = self.layout
        for name in ("address", "server_key", "client_key", "bridge", "bridge_arguments", "ocio_config"):
            layout.prop(self, name)
        row = layout.row()
        row.prop(self, "host_root")
        row.prop(self, "bridge_root")


def status_bar(self: Any, context: Any) -> None:
    """Tracking progress in the status bar, with the way to stop it."""
    for host in list(adapter._hosts.values()):
        if host.tracking is not None:
            frame, done, total = host.tracking
            self.layout.label(text=f"RotoBridge: tracking frame {frame} ({done}/{total}) — Esc or Cancel Tracking stops", icon="TIME")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines():
        words, line = paragraph.split(), ""
        for word in words:
            if line and len(line) + len(word) >= width:
                lines.append(line)
                line = ""
            line = f"{line} {word}".strip()
        lines.append(line)
    return lines


CLASSES = (RotoBridgeObject, RotoBridgeClip, ROTOBRIDGE_UL_objects, ROTOBRIDGE_PT_panel, RotoBridgePreferences)


def register() -> None:
    bpy.types.MovieClip.rotobridge = PointerProperty(type=RotoBridgeClip)
    bpy.types.STATUSBAR_HT_header.append(status_bar)


def unregister() -> None:
    bpy.types.STATUSBAR_HT_header.remove(status_bar)
    del bpy.types.MovieClip.rotobridge
