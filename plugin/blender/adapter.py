"""`rotobridge.controller.Host` for one Movie Clip: what only Blender knows.

The plate is the clip's file (an image sequence or a movie) with its colourspace; the
prompt model lives in the clip's ID property `rotobridge_prompts` (saved with the .blend)
and is mirrored into the clip's object list; results reach Blender data on the main thread
through `QUEUE`, which `tick` drains from a `bpy.app.timers` timer; progress shows in the
window manager's progress cursor and the status bar; errors become one report plus a
message kept in the panel. All decisions are the controller's; coordinates convert with
`rotobridge.coords.BlenderClip`, paths with `rotobridge.paths.PathMap` (preferences).
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from typing import Any, Callable

import bpy

from rotobridge import keys, recipe
from rotobridge.client import Client
from rotobridge.controller import ClientFactory, Controller
from rotobridge.controls import MatteControls
from rotobridge.coords import BlenderClip
from rotobridge.errors import HostError, RotobridgeError
from rotobridge.host import DISCONNECTED
from rotobridge.mainthread import MainThreadQueue
from rotobridge.paths import PathMap
from rotobridge.prompts import Colour
from rotobridge.protocol import Preview
from rotobridge.recipe import Shot

from . import comp, local_bridge

#: The clip's ID property holding the prompt model (rotobridge.prompts' stored form).
PROMPTS = "rotobridge_prompts"
#: How hosts reach the bridge; tests swap in a test double.
CLIENT_FACTORY: ClientFactory = Client
#: Callbacks for the main thread, from the controller's and the client's threads.
QUEUE = MainThreadQueue()
#: Seconds between two runs of `tick`.
TICK = 0.05
#: Colours of new objects, in turn.
PALETTE: tuple[Colour, ...] = ((1.0, 0.3, 0.2), (0.2, 0.6, 1.0), (0.3, 0.9, 0.3), (1.0, 0.8, 0.1), (0.8, 0.3, 1.0))
#: Blender's built-in colourspaces as named in OCIO's studio config, which the bridge can
#: open anywhere (`ocio://studio-config-latest`); Blender's own config file may not be.
STUDIO_NAMES = {
    "sRGB": "sRGB Encoded Rec.709 (sRGB)",
    "Linear Rec.709": "Linear Rec.709 (sRGB)",
    "ACEScg": "ACEScg",
    "ACES2065-1": "ACES2065-1",
    "Linear Rec.2020": "Linear Rec.2020",
    "Linear DCI-P3 D65": "Linear P3-D65",
    "Display P3": "sRGB Encoded P3-D65",
    "Rec.1886": "Gamma 2.4 Encoded Rec.709",
    "Non-Color": "Raw",
}
STUDIO_CONFIG = "ocio://studio-config-latest"
_DIGITS = re.compile(r"^(.*?)(\d+)(\.[^.]*)?$")

_hosts: dict[int, BlenderHost] = {}


class BlenderHost:
    """The Host of one movie clip, with the actions of its panel and tools."""

    def __init__(self, clip: bpy.types.MovieClip) -> None:
        self.clip_uid: int = clip.session_uid
        self.state = DISCONNECTED
        self.preview: Preview | None = None
        #: (plate frame, done, total) of the running propagation
        self.tracking: tuple[int, int, int] | None = None
        #: (title, message) of every error shown; the panel shows the last one
        self.errors: list[tuple[str, str]] = []
        self.notice = ""
        #: connect once the local bridge this add-on started is serving
        self.connect_pending = False
        self.syncing = False  # changes made while mirroring the model are not edits
        #: the controller's current client (closed for sure when the add-on stops)
        self.client: Client | None = None
        self.controller = Controller(self, client_factory=self._new_client)

    def _new_client(self, *args: Any, **kwargs: Any) -> Client:
        self.client = CLIENT_FACTORY(*args, **kwargs)
        return self.client

    @property
    def clip(self) -> bpy.types.MovieClip:
        for clip in bpy.data.movieclips:
            if clip.session_uid == self.clip_uid:
                return clip
        raise HostError("the movie clip of this RotoBridge session is gone")

    # --- Host ----------------------------------------------------------------------

    def shot(self) -> Shot:
        clip = self.clip
        space = self.space()
        first = space.first_frame  # every file is plate; the clip's duration counts from its offset on
        last = space.plate_frame(clip.frame_start + int(clip.frame_duration) - 1)
        path = bpy.path.abspath(clip.filepath)
        sequence = clip.source == "SEQUENCE"
        config, colourspace = _colour(clip.colorspace_settings.name)
        paths = path_map()
        plate = recipe.Plate(
            paths.to_bridge(_sequence(path)[0] if sequence else path), f"{first}-{last}", colourspace,
            first_frame=1 if sequence else first,
        )
        output = recipe.Output(paths.to_bridge(self.output()))
        return Shot(plate, output, recipe.Colour(config=paths.config_to_bridge(config)), (space.width, space.height))

    def load_prompts(self) -> str:
        return str(self.clip.get(PROMPTS, ""))

    def store_prompts(self, text: str) -> None:
        self.clip[PROMPTS] = text
        self.mirror()

    def dispatch(self, fn: Callable[[], None]) -> None:
        QUEUE(fn)

    def state_changed(self, state: str) -> None:
        self.state = state
        redraw()

    def show_preview(self, preview: Preview) -> None:
        self.preview = preview
        redraw()

    def progress(self, frame: int, done: int, total: int) -> None:
        wm = bpy.context.window_manager
        if self.tracking is None:
            wm.progress_begin(0, max(total, 1))
        self.tracking = (frame, done, total)
        wm.progress_update(done)
        redraw()

    def mattes_written(self, output: recipe.Output, status: str, written: int, total: int) -> None:
        if self.tracking is not None:
            bpy.context.window_manager.progress_end()
        self.tracking = None
        self.notice = f"{written} of {total} mattes written ({status})"
        frames = self.controller.frames
        if written and frames is not None:
            objects = [o.name for o in self.controller.prompts.objects]
            pattern = path_map().to_host(output.path)
            comp.show_mattes(bpy.context.scene, self.clip, pattern, objects, self.space(), frames, self.active_name())
        report({"INFO"}, f"RotoBridge: {self.notice}")
        redraw()

    def on_error(self, title: str, message: str) -> None:
        self.errors.append((title, message))
        report({"ERROR"}, f"RotoBridge: {title}: {message}")
        redraw()

    # --- actions -------------------------------------------------------------------

    def connect(self) -> None:
        """Connect to the bridge of the add-on's preferences and open this clip's shot."""
        prefs = preferences()
        found = keys.from_settings(bpy.path.abspath(prefs.server_key), bpy.path.abspath(prefs.client_key))
        self.controller.connect(prefs.address, found)
        self.controller.open_shot()

    def add_object(self, name: str) -> int | None:
        colour = PALETTE[len(self.controller.prompts.objects) % len(PALETTE)]
        added = self.controller.add_object(name, colour)
        if added is not None:
            self.clip.rotobridge.active_object = len(self.clip.rotobridge.objects) - 1
        return added

    def click(self, location: tuple[float, float], positive: bool = True) -> None:
        """A point at `location` (clip pixels from the bottom-left, as the Clip Editor's view) on this frame."""
        x, y = self.space().pixel_to_plate(*location)
        self.controller.click(self.active_id(), self.plate_frame(), x, y, positive)

    def set_box(self, corner: tuple[float, float], other: tuple[float, float]) -> None:
        """A box between two corners (clip pixels from the bottom-left) on this frame."""
        space = self.space()
        (x0, y0), (x1, y1) = (space.pixel_to_plate(*c) for c in (corner, other))
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        self.controller.set_box(self.active_id(), self.plate_frame(), box)

    def propagate(self, direction: str) -> None:
        overwrite = True if self.clip.rotobridge.overwrite else None
        self.controller.propagate(direction, overwrite=overwrite)

    def set_matte(self, item: Any) -> None:
        """An object's matte properties changed: its controls follow (a refused value reverts)
        and the current frame's preview shows them."""
        try:
            self.controller.set_matte(int(item.object_id), matte_controls(item), self.plate_frame())
        except RotobridgeError as exc:
            self.controller.report(exc)
        self.mirror()

    def mirror(self) -> None:
        """Make the clip's object list (names, colours, matte controls) match the prompt model."""
        items = self.clip.rotobridge.objects
        objects = self.controller.prompts.objects
        self.syncing = True
        try:
            while len(items) > len(objects):
                items.remove(len(items) - 1)
            while len(items) < len(objects):
                items.add()
            for item, obj in zip(items, objects):
                item.object_id, item.name = obj.id, obj.name
                item.colour = obj.colour or PALETTE[0]
                shown = obj.matte or MatteControls()
                item.matte_on = obj.matte is not None
                for field in dataclasses.fields(MatteControls):
                    setattr(item, field.name, getattr(shown, field.name))
        finally:
            self.syncing = False
        settings = self.clip.rotobridge
        settings.active_object = min(settings.active_object, max(len(items) - 1, 0))
        redraw()

    # --- what the host knows -------------------------------------------------------

    def space(self) -> BlenderClip:
        clip = self.clip
        width, height = (int(v) for v in clip.size)
        if not (width and height):
            raise HostError(f"Blender cannot read the clip '{clip.name}' ({clip.filepath}): check its file")
        first = _sequence(clip.filepath)[1] if clip.source == "SEQUENCE" else 1
        return BlenderClip(width, height, clip.frame_start, clip.frame_offset, first)

    def plate_frame(self) -> int:
        return self.space().plate_frame(bpy.context.scene.frame_current)

    def output(self) -> str:
        """Where the mattes go, as Blender sees the path (default: next to the .blend)."""
        clip = self.clip
        name = _shot_name(clip)
        path = clip.rotobridge.output.strip() or f"//mattes/{name}/{name}.####.exr"
        if path.startswith("//") and not bpy.data.filepath:
            raise HostError("save the .blend first, or set the clip's matte path (RotoBridge panel, Mattes)")
        return os.path.normpath(bpy.path.abspath(path))

    def active_id(self) -> int:
        settings = self.clip.rotobridge
        if not 0 <= settings.active_object < len(settings.objects):
            raise HostError("add an object first (the + next to the object list), then click on it")
        return int(settings.objects[settings.active_object].object_id)

    def active_name(self) -> str | None:
        try:
            return self.controller.prompts.object(self.active_id()).name
        except RotobridgeError:
            return None


def matte_controls(item: Any) -> MatteControls | None:
    """The controls an object's properties show (None when Refine Matte is off); RecipeError naming a bad one."""
    if not item.matte_on:
        return None
    return MatteControls(**{
        f.name: int(getattr(item, f.name)) if f.type == "int" else float(getattr(item, f.name))
        for f in dataclasses.fields(MatteControls)
    })


def _sequence(path: str) -> tuple[str, int]:
    """An image sequence's file (…/sh010.1001.exr) as its pattern (…/sh010.####.exr) and frame."""
    folder, name = os.path.split(path)
    match = _DIGITS.match(name)
    if match is None:
        raise HostError(f"the clip's file name {name!r} has no frame number: Blender reads it as one image")
    head, digits, ext = match.groups()
    return os.path.join(folder, f"{head}{'#' * len(digits)}{ext or ''}"), int(digits)


def _colour(name: str) -> tuple[str, str]:
    """(OCIO config for the bridge, the plate's colourspace in it)."""
    prefs = preferences()
    config = prefs.ocio_config.strip() or os.environ.get("OCIO", "")
    if config:  # the bridge reads the config Blender uses: names match
        return config, name
    studio = STUDIO_NAMES.get(name)
    if studio is None:
        raise HostError(
            f"the clip's colour space '{name}' has no counterpart in OCIO's studio config: choose one of "
            f"{', '.join(STUDIO_NAMES)} (Clip panel, Footage Settings), or set the OCIO config the bridge "
            "should use in the add-on's preferences"
        )
    return STUDIO_CONFIG, studio


def _shot_name(clip: bpy.types.MovieClip) -> str:
    """The plate's name without frame number and extension (sh010.1001.exr → sh010)."""
    stem = os.path.splitext(os.path.basename(clip.filepath))[0]
    if clip.source == "SEQUENCE":
        stem = re.sub(r"[._-]*\d+$", "", stem)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "shot"


def path_map() -> PathMap:
    """The preferences' path mapping: a folder as Blender sees it ↔ as the bridge sees it."""
    prefs = preferences()
    return PathMap(prefs.host_root, prefs.bridge_root)


# --- the add-on's plumbing ---------------------------------------------------------


def preferences() -> Any:
    return bpy.context.preferences.addons[__package__].preferences


def host_for(clip: bpy.types.MovieClip) -> BlenderHost:
    """The clip's host, made on first use."""
    host = _hosts.get(clip.session_uid)
    if host is None:
        host = _hosts[clip.session_uid] = BlenderHost(clip)
    return host


def find_host(clip: bpy.types.MovieClip | None) -> BlenderHost | None:
    """The clip's host if it has one (drawing code must not make one)."""
    return None if clip is None else _hosts.get(clip.session_uid)


def release_all(wait: float = 1.0) -> None:
    """Close every clip's bridge session (a file is loaded, or the add-on stops).

    The controllers close their sessions and clients in the background; a client still
    open after `wait` seconds (e.g. waiting on a bridge that does not answer) is closed here.
    """
    clients = [h.client for h in _hosts.values() if h.client is not None]
    for host in _hosts.values():
        host.controller.disconnect()
    _hosts.clear()
    deadline = time.monotonic() + wait
    for client in clients:
        while not client.closed and time.monotonic() < deadline:
            time.sleep(0.01)
        client.close()


def tick() -> float:
    """The timer: run what the bridge threads handed to the main thread, watch a local bridge."""
    QUEUE.drain()
    event = local_bridge.poll()
    if event is not None:
        for host in [h for h in _hosts.values() if h.connect_pending]:
            host.connect_pending = False
            if event.serving:
                _guarded(host, host.connect)
            else:
                host.on_error("Local bridge stopped", event.text)
    return TICK


def _guarded(host: BlenderHost, action: Callable[[], None]) -> None:
    try:
        action()
    except RotobridgeError as exc:
        host.controller.report(exc)


def report(level: set[str], message: str) -> None:
    """A report in Blender's status bar and Info log (printed in background mode)."""
    if bpy.app.background:
        print(message, file=sys.stderr)
        return
    try:
        bpy.ops.rotobridge.report(level=next(iter(level)), message=message)
    except RuntimeError:  # no context to report in (e.g. while a file loads)
        print(message, file=sys.stderr)


def redraw() -> None:
    """Redraw the Clip Editors and the status bar (progress, previews, messages)."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm else ():
        for area in window.screen.areas:
            if area.type in {"CLIP_EDITOR", "STATUSBAR", "NODE_EDITOR"}:
                area.tag_redraw()
