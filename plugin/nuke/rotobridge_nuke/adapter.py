"""`rotobridge.controller.Host` for one RotoBridge node: what only Nuke knows.

The plate comes from the Read on the node's input (its file pattern, frames, colourspace)
and the project's OCIO settings; prompts live in the node's hidden knob and are mirrored
as draggable XY/BBox knobs; results reach the main thread through
`nuke.executeInMainThread`; progress shows as a `nuke.ProgressTask` whose cancel button
cancels the tracking; errors become one `nuke.message` (stderr without a GUI). All
decisions are the controller's; coordinates convert with `rotobridge.coords.NukeSpace`,
paths with `rotobridge.paths.PathMap` (the node's `host path` and `bridge path`).
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

import nuke

from rotobridge import keys, recipe
from rotobridge.client import Client
from rotobridge.controller import ClientFactory, Controller
from rotobridge.coords import NukeSpace, nuke_proxy_scale
from rotobridge.errors import HostError, PromptError, RotobridgeError
from rotobridge.paths import PathMap
from rotobridge.protocol import DEFAULT_ADDRESS, Preview
from rotobridge.recipe import Shot

from . import node as n

#: How hosts reach the bridge; tests swap in a test double.
CLIENT_FACTORY: ClientFactory = Client
#: Panels listening to nodes: fn(node full name, event, payload).
Listener = Callable[[str, str, Any], None]
_listeners: list[Listener] = []
_hosts: dict[str, NukeHost] = {}
_DEFAULT_SPACE = re.compile(r"^default \((.+)\)$")


class NukeHost:
    """The Host of one RotoBridge node, with the node's button actions."""

    def __init__(self, node: nuke.Node) -> None:
        self.node = node
        self._task: nuke.ProgressTask | None = None
        self._syncing = False  # knob changes made while mirroring the model are not edits
        self.controller = Controller(self, client_factory=CLIENT_FACTORY)

    # --- Host --------------------------------------------------------------------

    def shot(self) -> Shot:
        read = self._plate()
        path = nuke.filename(read)
        if not path:
            raise HostError(f"the Read '{read.name()}' on the plate input has no file")
        if _text(read, "frame").strip():
            raise HostError(
                f"the Read '{read.name()}' retimes its file (frame '{_text(read, 'frame')}'): rotobridge works in the "
                "file's own frame numbers, so clear 'frame' and retime after RotoBridge"
            )
        space = _DEFAULT_SPACE.sub(r"\1", _text(read, "colorspace"))
        if space == "default":
            raise HostError(f"set the colorspace of the Read '{read.name()}' explicitly: the bridge does not guess")
        paths = self._paths()
        plate = recipe.Plate(paths.to_bridge(path), f"{_int(read, 'first')}-{_int(read, 'last')}", space)
        output = recipe.Output(paths.to_bridge(self._output()))
        colour = recipe.Colour(config=paths.config_to_bridge(_colour_config()))
        return Shot(plate, output, colour, _size(read["format"]))

    def load_prompts(self) -> str:
        return _text(self.node, n.PROMPTS)

    def store_prompts(self, text: str) -> None:
        self.node[n.PROMPTS].setValue(text)
        self._mirror()

    def dispatch(self, fn: Callable[[], None]) -> None:
        nuke.executeInMainThread(fn)

    def state_changed(self, state: str) -> None:
        self.node[n.STATUS].setValue(state.replace("_", " "))
        self._tell("state", state)

    def show_preview(self, preview: Preview) -> None:
        self._tell("preview", preview)

    def progress(self, frame: int, done: int, total: int) -> None:
        if self._task is None:
            self._task = nuke.ProgressTask(f"RotoBridge: tracking {self.node.name()}")
        self._task.setMessage(f"frame {frame} ({done} of {total})")
        self._task.setProgress(done * 100 // max(total, 1))
        self._tell("progress", (frame, done, total))
        if self._task.isCancelled():
            self.controller.cancel()

    def mattes_written(self, output: recipe.Output, status: str, written: int, total: int) -> None:
        self._task = None  # Nuke ends a ProgressTask when it is deleted
        frames = self.controller.frames
        read = nuke.toNode(f"{self.node.fullName()}.{n.MATTES}")
        if written and read is not None and frames is not None:
            read["file"].setValue(self._paths().to_host(output.path))
            read["first"].setValue(frames[0])
            read["last"].setValue(frames[1])
            reload = read["reload"]
            if isinstance(reload, nuke.Script_Knob):
                reload.execute()
        self._tell("finished", (status, written, total))

    def on_error(self, title: str, message: str) -> None:
        text = f"RotoBridge {self.node.name()}: {title}\n\n{message}"
        if nuke.env["gui"]:
            nuke.message(text)
        else:
            nuke.tprint(text)
        self._tell("error", (title, message))

    # --- buttons -----------------------------------------------------------------

    def connect(self) -> None:
        found = keys.from_settings(_text(self.node, n.SERVER_KEY), _text(self.node, n.CLIENT_KEY))
        self.controller.connect(_text(self.node, n.BRIDGE) or DEFAULT_ADDRESS, found)
        self.controller.open_shot()

    def add_object(self) -> None:
        name = nuke.getInput("Name of the new object (it becomes the matte layer's name)", "")
        if name and self.controller.add_object(name.strip()) is not None:
            self.node[n.OBJECT].setValue(name.strip())

    def remove_object(self) -> None:
        self.controller.remove_object(self._object())

    def add_point(self, positive: bool) -> None:
        """A point in the middle of the plate, on this frame; the artist drags it into place."""
        space = self._space()
        self.controller.click(self._object(), nuke.frame(), space.width / 2, space.height / 2, positive)

    def add_box(self) -> None:
        space = self._space()
        box = (space.width / 4, space.height / 4, space.width * 3 / 4, space.height * 3 / 4)
        self.controller.set_box(self._object(), nuke.frame(), box)

    def clear_frame(self) -> None:
        self.controller.clear(self._object(), nuke.frame())

    def propagate(self, direction: str) -> None:
        first, last = _int(self.node, n.FIRST), _int(self.node, n.LAST)
        overwrite = True if _flag(self.node, n.OVERWRITE) else None
        self.controller.propagate(direction, first or None, last or None, overwrite)

    def export(self) -> None:
        path = nuke.getFilename("Export the recipe (rerender the mattes with `rotobridge render`)", "*.json")
        if path and self.controller.export_recipe(path) is not None and nuke.env["gui"]:
            nuke.message(f"Recipe written: {path}\nRender it anywhere with: rotobridge render {path}")

    # --- knobs -------------------------------------------------------------------

    def knob_changed(self, knob: nuke.Knob) -> None:
        """The artist moved a point or box knob: the model follows (a refused move springs back)."""
        name = knob.name()
        if self._syncing or not name.startswith((n.POINT, n.BOX)):
            return
        ids = [int(part) for part in name.split("_")[2:]]
        try:
            space = self._space()
            if isinstance(knob, nuke.XY_Knob):
                self.controller.move_point(ids[0], ids[1], ids[2], *space.to_plate(knob.x(), knob.y()))
            elif isinstance(knob, nuke.BBox_Knob):
                box = space.box_to_plate(float(knob.x()), float(knob.y()), float(knob.r()), float(knob.t()))
                self.controller.set_box(ids[0], ids[1], box)
        except RotobridgeError as exc:
            self.controller.report(exc)
        self._mirror()

    def _mirror(self) -> None:
        """Make the object list, point and box knobs and the first-object Copy match the model."""
        objects = self.controller.prompts.objects
        choice = self.node[n.OBJECT]
        if isinstance(choice, nuke.Enumeration_Knob):
            choice.setValues([o.name for o in objects])
        copy = nuke.toNode(f"{self.node.fullName()}.{n.FIRST_OBJECT}")
        if copy is not None:
            layer = objects[0].name if objects else ""
            if layer and layer not in nuke.layers():
                nuke.Layer(layer, [f"{layer}.alpha"])
            copy["from0"].setValue(f"{layer}.alpha" if layer else "none")
        self._tell("objects", [o.name for o in objects])
        try:
            space = self._space()
        except RotobridgeError:
            return  # no plate to place knobs on; the model is stored all the same
        wanted: dict[str, tuple[str, list[float]]] = {}
        for obj in objects:
            for prompt in obj.prompts:
                for i, (point, positive) in enumerate(zip(prompt.points, prompt.labels)):
                    sign = "+" if positive else "-"
                    wanted[f"{n.POINT}{obj.id}_{prompt.frame}_{i}"] = (f"{obj.name} {prompt.frame} {sign}{i + 1}", list(space.from_plate(*point)))
                if prompt.box is not None:
                    wanted[f"{n.BOX}{obj.id}_{prompt.frame}"] = (f"{obj.name} {prompt.frame} box", list(space.box_from_plate(prompt.box)))
        self._syncing = True
        try:
            for name, old in self.node.knobs().items():
                if name.startswith((n.POINT, n.BOX)) and name not in wanted:
                    self.node.removeKnob(old)
            for name, (label, value) in wanted.items():
                knob = self.node.knob(name)
                if knob is None:
                    knob = nuke.XY_Knob(name, label) if name.startswith(n.POINT) else nuke.BBox_Knob(name, label)
                    self.node.addKnob(knob)
                knob.setLabel(label)
                knob.setValue(value)
        finally:
            self._syncing = False

    # --- helpers -----------------------------------------------------------------

    def _plate(self) -> nuke.Node:
        read = self.node.input(0)
        if read is None or read.Class() != "Read":
            found = "nothing" if read is None else f"the {read.Class()} '{read.name()}'"
            raise HostError(
                f"connect the plate input straight to the plate's Read node (it is connected to {found}): the bridge "
                "reads the plate files itself, so put retimes, reformats and colour work after RotoBridge"
            )
        return read

    def _space(self) -> NukeSpace:
        read, root = self._plate(), nuke.root()
        proxy = (1.0, 1.0)
        if _flag(root, "proxy"):
            proxy = nuke_proxy_scale(
                _text(root, "proxy_type"), float(root["proxy_scale"].value()), _size(root["format"]), _size(root["proxy_format"])
            )
        box = read.bbox()
        return NukeSpace(*_size(read["format"]), proxy, (box.x(), box.y(), box.x() + box.w(), box.y() + box.h()))

    def _object(self) -> int:
        name = _text(self.node, n.OBJECT)
        found = next((o.id for o in self.controller.prompts.objects if o.name == name), None)
        if found is None:
            raise PromptError("add an object first (Add object), then choose it in 'object'")
        return found

    def _output(self) -> str:
        """Where the mattes go, as Nuke sees the path (default: next to the script)."""
        path = _text(self.node, n.OUTPUT).strip()
        if not path:
            script = _text(nuke.root(), "name")
            if not script:
                raise HostError("save the script first, or set 'mattes' to where the bridge should write the mattes")
            path = os.path.join(os.path.dirname(script), "mattes", self.node.name(), f"{self.node.name()}.####.exr")
        return path

    def _paths(self) -> PathMap:
        """The node's path mapping (unset on nodes saved before it had one)."""
        knobs = (self.node.knob(n.HOST_ROOT), self.node.knob(n.BRIDGE_ROOT))
        host, bridge = ("" if k is None else str(k.value()) for k in knobs)
        return PathMap(host, bridge)

    def _tell(self, event: str, payload: Any) -> None:
        for listener in list(_listeners):
            listener(self.node.fullName(), event, payload)


def _colour_config() -> str:
    """The project's OCIO config, as a path (as Nuke sees it) or a built-in the bridge can open too."""
    root = nuke.root()
    if _text(root, "colorManagement") != "OCIO":
        raise HostError(
            "Project Settings > Color > color management is 'Nuke': switch it to OCIO so the bridge can apply the "
            "same colour config"
        )
    config = _text(root, "OCIO_config")
    if config == "custom":
        path = _text(root, "customOCIOConfigPath") or os.environ.get("OCIO", "")
        if not path:
            raise HostError("the project's OCIO config is 'custom' but has no path: set 'custom OCIO config'")
        return path
    if config.startswith("fn-nuke_"):  # Nuke's copies of OCIO's built-in configs
        return "ocio://" + config[len("fn-nuke_"):]
    raise HostError(
        f"the project's OCIO config '{config}' ships inside Nuke, where the bridge cannot read it: choose a "
        "'fn-nuke_cg-config' or 'fn-nuke_studio-config', or 'custom' with a path the bridge can read"
    )


def _text(node: nuke.Node, knob: str) -> str:
    return str(node[knob].value())


def _int(node: nuke.Node, knob: str) -> int:
    return int(node[knob].value())


def _flag(node: nuke.Node, knob: str) -> bool:
    return bool(node[knob].value())


def _size(knob: nuke.Knob) -> tuple[int, int]:
    """A Format_Knob's width and height."""
    fmt = knob.value()
    return (int(fmt.width()), int(fmt.height()))


def _same(a: nuke.Node, b: nuke.Node) -> bool:
    try:
        return bool(a == b)
    except ValueError:  # Nuke's wrapper of a node from a closed script
        return False


def host_for(node: nuke.Node) -> NukeHost:
    """The node's host, made on first use (after a script is reopened, made anew)."""
    key = node.fullName()
    host = _hosts.get(key)
    if host is None or not _same(host.node, node):
        if host is not None:
            host.controller.disconnect()
        host = _hosts[key] = NukeHost(node)
    return host


def release_all() -> None:
    """Close every node's bridge session (the script is closing)."""
    for host in _hosts.values():
        host.controller.disconnect()
    _hosts.clear()


def listen(listener: Listener) -> None:
    _listeners.append(listener)


def unlisten(listener: Listener) -> None:
    _listeners.remove(listener)


_ACTIONS: dict[str, Callable[[NukeHost], None]] = {
    n.CONNECT: NukeHost.connect,
    n.ADD_OBJECT: NukeHost.add_object,
    n.REMOVE_OBJECT: NukeHost.remove_object,
    n.ADD_POSITIVE: lambda h: h.add_point(True),
    n.ADD_NEGATIVE: lambda h: h.add_point(False),
    n.ADD_BOX: NukeHost.add_box,
    n.CLEAR_FRAME: NukeHost.clear_frame,
    n.PREVIEW: lambda h: h.controller.preview(nuke.frame()),
    n.FORWARD: lambda h: h.propagate("forward"),
    n.BACKWARD: lambda h: h.propagate("backward"),
    n.BOTH: lambda h: h.propagate("both"),
    n.CANCEL: lambda h: h.controller.cancel(),
    n.EXPORT: NukeHost.export,
}


def press() -> None:
    """A RotoBridge button was pressed (its PyScript_Knob runs this)."""
    host = host_for(nuke.thisNode())
    try:
        _ACTIONS[nuke.thisKnob().name()](host)
    except RotobridgeError as exc:
        host.controller.report(exc)


def knob_changed() -> None:
    """The node's knobChanged script runs this for every knob the artist changes."""
    host_for(nuke.thisNode()).knob_changed(nuke.thisKnob())
