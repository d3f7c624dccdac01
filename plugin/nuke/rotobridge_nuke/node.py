"""The RotoBridge node: a Group with a plate input, its knobs, and the matte Read inside.

The knobs are the node's whole state, so a saved .nk keeps it: the bridge address and
keys, the path mapping (a folder as Nuke sees it ↔ as the bridge sees it, for a bridge
that mounts the shared storage elsewhere), the matte path, the matte controls of the
chosen object (`matte_*` knobs: they show and edit the controls of the object chosen in
`object`; every object's controls are kept in the prompt model), and the prompt model (a hidden
plain String_Knob, read with getText(): an eval knob would run the JSON's [...] as Tcl;
nodes made before keep their Multiline_Eval_String_Knob and load the same way; the
draggable point and box knobs mirror it). Inside, a Read of the EXR mattes (raw: they are
data; black where a frame has no matte) feeds a Copy that puts the first object into
rgba.alpha; every object is also its own `<object>.alpha` layer, as the bridge names the
channels. Rendering the node needs only that Read, so `nuke -x` farm renders need neither
the bridge nor this plugin.

Buttons and knob changes call `rotobridge_nuke.adapter`; the knobChanged script imports
it only if it can, so the node still loads where the plugin is missing.
"""

from __future__ import annotations

import dataclasses

import nuke

from rotobridge.controls import MatteControls
from rotobridge.protocol import DEFAULT_ADDRESS

BRIDGE, SERVER_KEY, CLIENT_KEY, STATUS, OUTPUT, OBJECT = "bridge", "server_key", "client_key", "status", "output", "object"
HOST_ROOT, BRIDGE_ROOT = "host_root", "bridge_root"
FIRST, LAST, OVERWRITE, PROMPTS = "first", "last", "overwrite", "rb_prompts"
CONNECT, ADD_OBJECT, REMOVE_OBJECT = "connect", "add_object", "remove_object"
ADD_POSITIVE, ADD_NEGATIVE, ADD_BOX, CLEAR_FRAME, PREVIEW = "add_positive", "add_negative", "add_box", "clear_frame", "preview"
FORWARD, BACKWARD, BOTH, CANCEL, EXPORT = "forward", "backward", "both", "cancel", "export"
#: Knobs that mirror the prompt model: rb_pt_<object>_<frame>_<index>, rb_box_<object>_<frame>.
POINT, BOX = "rb_pt_", "rb_box_"
#: The matte controls' knobs: "refine matte" (off: SAM 2's raw matte), then one knob per
#: rotobridge.controls.MatteControls field, named matte_<field>, in the documented order.
MATTE_ON = "matte_on"
MATTE_KNOBS = {
    "refine": ("refine edges", "edge refinement strength, 0 (off) to 1"),
    "refine_radius": ("refine radius", "colour window radius in plate pixels; 0: automatic"),
    "smoothing": ("reduce chatter", "temporal smoothing strength, 0 (off) to 1: applies to tracked mattes, not the one-frame preview"),
    "despeckle": ("despeckle", "islands and holes smaller than this many pixels are removed"),
    "clip_black": ("clip black", "values at or below become 0"),
    "clip_white": ("clip white", "values at or above become 1"),
    "shrink_grow": ("shrink/grow", "moves the edge out (positive) or in (negative), plate pixels"),
    "feather": ("feather", "Gaussian blur, plate pixels"),
}
MATTE_PREFIX = "matte_"
#: Nodes inside the group.
MATTES, FIRST_OBJECT = "mattes", "first_object"

_PRESS = "import rotobridge_nuke.adapter\nrotobridge_nuke.adapter.press()"
_CHANGED = """try:
    import rotobridge_nuke.adapter as rotobridge_adapter
except ImportError:
    rotobridge_adapter = None
if rotobridge_adapter is not None:
    rotobridge_adapter.knob_changed()
"""

_BUTTONS = {
    CONNECT: "Connect",
    ADD_OBJECT: "Add object",
    REMOVE_OBJECT: "Remove object",
    ADD_POSITIVE: "+ point",
    ADD_NEGATIVE: "- point",
    ADD_BOX: "Box",
    CLEAR_FRAME: "Clear frame",
    PREVIEW: "Preview",
    FORWARD: "Track forward",
    BACKWARD: "Track backward",
    BOTH: "Track both ways",
    CANCEL: "Cancel",
    EXPORT: "Export recipe",
}


def _button(name: str) -> nuke.PyScript_Knob:
    return nuke.PyScript_Knob(name, _BUTTONS[name], _PRESS)


def _tip(knob: nuke.Knob, tooltip: str) -> nuke.Knob:
    knob.setTooltip(tooltip)
    return knob


def matte_knobs() -> list[nuke.Knob]:
    """The matte controls' knobs, at the controls' defaults (integers for whole-number controls)."""
    defaults = MatteControls()
    knobs: list[nuke.Knob] = [_tip(nuke.Boolean_Knob(MATTE_ON, "refine matte"), "off: SAM 2's matte as it is")]
    for field in dataclasses.fields(MatteControls):
        label, tip = MATTE_KNOBS[field.name]
        kind = nuke.Int_Knob if field.type == "int" else nuke.Double_Knob
        knob = _tip(kind(MATTE_PREFIX + field.name, label), tip)
        knob.setValue(getattr(defaults, field.name))
        knobs.append(knob)
    return knobs


def create() -> nuke.Group:
    """A RotoBridge node, its input on the selected node (the plate's Read)."""
    selected = nuke.selectedNodes()
    group = nuke.nodes.Group()
    group.setName("RotoBridge1", uncollide=True)
    with group:
        nuke.nodes.Input(name="plate")
        read = nuke.nodes.Read(name=MATTES)
        read["raw"].setValue(True)
        for missing in ("on_error", "before", "after"):  # a frame with no matte is black, not a failed render
            read[missing].setValue("black")
        copy = nuke.nodes.Copy(name=FIRST_OBJECT)
        copy.setInput(0, read)
        copy.setInput(1, read)
        copy["to0"].setValue("rgba.alpha")
        nuke.nodes.Output().setInput(0, copy)
    prompts = nuke.String_Knob(PROMPTS, "prompts")
    prompts.setFlag(nuke.INVISIBLE)
    for knob in (
        nuke.Tab_Knob("rotobridge", "RotoBridge"),
        nuke.String_Knob(BRIDGE, "bridge", DEFAULT_ADDRESS),
        nuke.File_Knob(SERVER_KEY, "bridge key"),
        nuke.File_Knob(CLIENT_KEY, "your key"),
        _tip(nuke.File_Knob(HOST_ROOT, "host path"), "Path mapping: this folder as Nuke sees it (e.g. S:/shows)…"),
        _tip(nuke.String_Knob(BRIDGE_ROOT, "bridge path"), "…is this folder on the bridge's machine (e.g. /mnt/shows)"),
        _button(CONNECT),
        nuke.Text_Knob(STATUS, "status", "disconnected"),
        nuke.File_Knob(OUTPUT, "mattes"),
        nuke.Enumeration_Knob(OBJECT, "object", []),
        *(_button(b) for b in (ADD_OBJECT, REMOVE_OBJECT, ADD_POSITIVE, ADD_NEGATIVE, ADD_BOX, CLEAR_FRAME, PREVIEW)),
        *matte_knobs(),
        nuke.Int_Knob(FIRST, "frame range"),
        nuke.Int_Knob(LAST, "to"),
        nuke.Boolean_Knob(OVERWRITE, "replace existing mattes"),
        *(_button(b) for b in (FORWARD, BACKWARD, BOTH, CANCEL, EXPORT)),
        prompts,
        nuke.Tab_Knob("rb_points", "Points"),  # point and box knobs are added after it
    ):
        group.addKnob(knob)
    group["knobChanged"].setValue(_CHANGED)
    if selected:
        group.setInput(0, selected[0])
        if selected[0].Class() == "Read":
            group[FIRST].setValue(int(selected[0]["first"].value()))
            group[LAST].setValue(int(selected[0]["last"].value()))
    return group
