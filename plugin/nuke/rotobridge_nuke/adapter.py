"""`rotobridge.controller.Host` for one RotoBridge node: what only Nuke knows.

The plate comes from the Read on the node's input (its file pattern, frames, colourspace)
and the project's OCIO settings ($OCIO first, as Nuke itself); file knobs are read as
Nuke's Read reads them (Tcl evaluated, relative to the project directory, the full-size
file even in proxy mode); prompts live in the node's hidden text knob (read raw: Tcl
would run the JSON's [...]) and are mirrored as draggable XY/BBox knobs, the current
frame's only; results reach the main thread through `nuke.executeInMainThread`; progress
shows as a `nuke.ProgressTask` that ends with the tracking however it ends.

What Nuke asks of a plugin: the plugin's own knob edits stay off the undo stack (Ctrl+Z
must not separate the stored prompts from the session); errors go to the status knob and
the panel, and a modal `nuke.message` opens only for a button the artist pressed, never
from a knobChanged or executeInMainThread callback (stderr without a GUI). All decisions
are the controller's; coordinates convert with `rotobridge.coords.NukeSpace`, paths with
`rotobridge.paths.PathMap` (the node's `host path` and `bridge path`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import posixpath
import re
from typing import Any, Callable, Iterator

import nuke

from rotobridge import keys, recipe
from rotobridge.client import Client
from rotobridge.controls import MatteControls
from rotobridge.controller import ClientFactory, Controller
from rotobridge.coords import NukeSpace, nuke_proxy_scale
from rotobridge.errors import HostError, PromptError, RotobridgeError
from rotobridge.host import CANCELLING, PROPAGATING
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
        self._dialogs = False  # a button action runs: the one time a modal dialog may open
        self._frame: int | None = None  # the frame whose point and box handles show
        self._tracked: tuple[int, int] | None = None  # the frames the running propagation writes
        self._state = "disconnected"
        self.controller = Controller(self, client_factory=CLIENT_FACTORY)

    # --- Host --------------------------------------------------------------------

    def shot(self) -> Shot:
        read = self._plate()
        path = _sequence(read["file"])  # the full-size file: nuke.filename() is the proxy file in proxy mode
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
        return _raw(self.node[n.PROMPTS])

    def store_prompts(self, text: str) -> None:
        with _no_undo():
            self.node[n.PROMPTS].setValue(text)
        self._mirror()

    def dispatch(self, fn: Callable[[], None]) -> None:
        nuke.executeInMainThread(fn)

    def state_changed(self, state: str) -> None:
        if state not in (PROPAGATING, CANCELLING):
            self._end_progress()  # a lost session, a disconnect or a new connection ends tracking too
        self._state = state.replace("_", " ")
        with _no_undo():
            self.node[n.STATUS].setValue(self._state)
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
        """Show the mattes: the Read covers every frame tracked, and renders black where none was written."""
        self._end_progress()
        tracked, self._tracked = self._tracked, None
        read = nuke.toNode(f"{self.node.fullName()}.{n.MATTES}")
        if written and read is not None and tracked is not None:
            path = self._paths().to_host(output.path)
            first, last = tracked
            if _raw(read["file"]) == path:  # earlier runs' mattes are still there
                first, last = min(first, _int(read, "first")), max(last, _int(read, "last"))
            with _no_undo():
                read["file"].setValue(path)
                read["first"].setValue(first)
                read["last"].setValue(last)
                _black_where_missing(read)
            reload = read["reload"]
            if isinstance(reload, nuke.Script_Knob):
                reload.execute()
        self._tell("finished", (status, written, total))

    def on_error(self, title: str, message: str) -> None:
        """The status knob and the panel show it; a dialog only answers a button the artist pressed."""
        text = f"RotoBridge {self.node.name()}: {title}\n\n{message}"
        if not nuke.env["gui"]:
            nuke.tprint(text)
        elif self._dialogs:
            nuke.message(text)
        with _no_undo():
            self.node[n.STATUS].setValue(f"{self._state}: {title}: {message}")
        self._tell("error", (title, message))

    # --- buttons -----------------------------------------------------------------

    @contextlib.contextmanager
    def button(self) -> Iterator[None]:
        """While a button's action runs, its errors may be dialogs (the artist is waiting for it)."""
        self._dialogs = True
        try:
            yield
        finally:
            self._dialogs = False

    def connect(self) -> None:
        found = keys.from_settings(_file(self.node, n.SERVER_KEY), _file(self.node, n.CLIENT_KEY))
        self.controller.connect(_text(self.node, n.BRIDGE) or DEFAULT_ADDRESS, found)
        self.controller.open_shot()

    def add_object(self) -> None:
        name = nuke.getInput("Name of the new object (it becomes the matte layer's name)", "")
        if name and self.controller.add_object(name.strip()) is not None:
            with _no_undo():
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
        frames = self.controller.frames
        if frames is not None:
            self._tracked = (first or frames[0], last or frames[1])
        self.controller.propagate(direction, first or None, last or None, overwrite)

    def export(self) -> None:
        path = nuke.getFilename("Export the recipe (rerender the mattes with `rotobridge render`)", "*.json")
        if path and self.controller.export_recipe(path) is not None and nuke.env["gui"]:
            nuke.message(f"Recipe written: {path}\nRender it anywhere with: rotobridge render {path}")

    # --- knobs -------------------------------------------------------------------

    def knob_changed(self, knob: nuke.Knob) -> None:
        """A knob changed: the artist moved a point or box (the model follows; a refused move springs back).

        Nuke calls this for every knob change, the plugin's own included (those come while
        `_syncing`), and for its panel opening ("showPanel").
        """
        name = knob.name()
        if name == "showPanel":
            self.show_frame()
        if name == n.OBJECT and not self._syncing:
            with _no_undo():
                self._mirror_matte()  # the matte knobs show the chosen object's controls
            return
        if name.startswith(n.MATTE_PREFIX) and not self._syncing:
            self._matte_changed()
            return
        if self._syncing or not name.startswith((n.POINT, n.BOX)):
            return
        dialogs, self._dialogs = self._dialogs, False  # a knobChanged callback never opens a dialog
        try:
            ids = [int(part) for part in name.split("_")[2:]]
            space = self._space()
            if isinstance(knob, nuke.XY_Knob):
                self.controller.move_point(ids[0], ids[1], ids[2], *space.to_plate(knob.x(), knob.y()))
            elif isinstance(knob, nuke.BBox_Knob):
                box = space.box_to_plate(float(knob.x()), float(knob.y()), float(knob.r()), float(knob.t()))
                self.controller.set_box(ids[0], ids[1], box)
        except RotobridgeError as exc:
            self.controller.report(exc)
        finally:
            self._dialogs = dialogs
        self._mirror()

    def _matte_changed(self) -> None:
        """The artist changed a matte knob: the chosen object's controls follow and its
        preview updates (a refused value springs back)."""
        dialogs, self._dialogs = self._dialogs, False  # a knobChanged callback never opens a dialog
        try:
            self.controller.set_matte(self._object(), self._matte_from_knobs(), nuke.frame())
        except RotobridgeError as exc:
            self.controller.report(exc)
        finally:
            self._dialogs = dialogs
        self._mirror()

    def _matte_from_knobs(self) -> MatteControls | None:
        """The controls the matte knobs show (None when 'refine matte' is off); RecipeError naming a bad one."""
        if not _flag(self.node, n.MATTE_ON):
            return None
        values: dict[str, Any] = {}
        for field in dataclasses.fields(MatteControls):
            value = self.node[n.MATTE_PREFIX + field.name].value()
            values[field.name] = int(value) if field.type == "int" else float(value)
        return MatteControls(**values)

    def show_frame(self) -> None:
        """Show the handles of the current frame's points and box only (dragging another
        frame's handle would place a click on the wrong picture)."""
        frame = nuke.frame()
        if frame == self._frame:
            return
        self._frame = frame
        for name, knob in self.node.knobs().items():
            if name.startswith((n.POINT, n.BOX)):
                knob.setVisible(_knob_frame(name) == frame)

    def _mirror(self) -> None:
        """Make the object list, point and box knobs and the first-object Copy match the model."""
        with _no_undo(), self._synced():
            self._mirror_knobs()
        self._frame = None
        self.show_frame()

    def _mirror_knobs(self) -> None:
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
        self._mirror_matte()
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
        with self._synced():
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

    @contextlib.contextmanager
    def _synced(self) -> Iterator[None]:
        """Knob changes made inside are the plugin's own mirroring, not the artist's edits."""
        was, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = was

    def _mirror_matte(self) -> None:
        """Make the matte knobs show the chosen object's controls (defaults when it has none);
        nodes saved before these knobs existed have none to show."""
        if self.node.knob(n.MATTE_ON) is None:
            return
        chosen = next((o for o in self.controller.prompts.objects if o.name == _text(self.node, n.OBJECT)), None)
        controls = chosen.matte if chosen is not None else None
        shown = controls or MatteControls()
        with self._synced():
            self.node[n.MATTE_ON].setValue(controls is not None)
            for field in dataclasses.fields(MatteControls):
                self.node[n.MATTE_PREFIX + field.name].setValue(getattr(shown, field.name))

    # --- helpers -----------------------------------------------------------------

    def _end_progress(self) -> None:
        self._task = None  # Nuke ends a ProgressTask when it is deleted

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
        path = _sequence(self.node[n.OUTPUT])
        if not path:
            script = _text(nuke.root(), "name")
            if not script:
                raise HostError("save the script first, or set 'mattes' to where the bridge should write the mattes")
            path = posixpath.join(os.path.dirname(script), "mattes", self.node.name(), f"{self.node.name()}.####.exr")
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
    """The OCIO config Nuke uses, as a path (as Nuke sees it) or a built-in the bridge can open too.

    A set $OCIO wins over the script's choice, in Nuke itself (nukescripts.ViewerProcess:
    "unless the OCIO environment variable is defined, in which case that will override").
    """
    override = os.environ.get("OCIO", "").strip()
    if override:
        return override
    root = nuke.root()
    if _text(root, "colorManagement") != "OCIO":
        raise HostError(
            "Project Settings > Color > color management is 'Nuke': switch it to OCIO so the bridge can apply the "
            "same colour config"
        )
    config = _text(root, "OCIO_config")
    if config == "custom":
        path = _file(root, "customOCIOConfigPath")
        if not path:
            raise HostError("the project's OCIO config is 'custom' but has no path: set 'custom OCIO config'")
        return path
    if config.startswith("fn-nuke_"):  # Nuke's copies of OCIO's built-in configs
        return "ocio://" + config[len("fn-nuke_"):]
    raise HostError(
        f"the project's OCIO config '{config}' ships inside Nuke, where the bridge cannot read it: choose a "
        "'fn-nuke_cg-config' or 'fn-nuke_studio-config', or 'custom' with a path the bridge can read"
    )


@contextlib.contextmanager
def _no_undo() -> Iterator[None]:
    """The plugin's own knob edits stay off Nuke's undo stack: undoing them would separate
    what the node stores from the model the session has."""
    nuke.Undo.disable()
    try:
        yield
    finally:
        nuke.Undo.enable()


def _black_where_missing(read: nuke.Node) -> None:
    """Frames outside the range or never written (a cancel) render black, not an error that
    fails a `nuke -x` render."""
    read["on_error"].setValue("black")
    for knob in ("before", "after"):
        read[knob].setValue("black")


def _knob_frame(name: str) -> int:
    """The frame in a point or box knob's name: rb_pt_<object>_<frame>_<i>, rb_box_<object>_<frame>."""
    return int(name.split("_")[3])


#: Digits at the end of what two evaluations share belong to the frame number (1001 and 1002 share 100).
_DIGITS = "0123456789"


def _sequence(knob: nuke.Knob) -> str:
    """A file knob's file name as Nuke's Read reads it: Tcl evaluated, relative to the
    project directory, with the frame number as `#` (one per digit).

    Nuke evaluates a file name for one frame at a time, so it is evaluated at frames 1 and
    2 and the frame number found where the two differ.
    """
    if not isinstance(knob, nuke.File_Knob):
        return _absolute(str(knob.value()))
    one, two = (_evaluated(knob, frame) for frame in (1, 2))
    if one == two:
        return _absolute(one)
    prefix = posixpath.commonprefix([one, two]).rstrip(_DIGITS)
    suffix = posixpath.commonprefix([one[::-1], two[::-1]])[::-1]
    number = one[len(prefix):len(one) - len(suffix)]
    if not number.isdigit() or int(number) != 1 or two[len(prefix):len(two) - len(suffix)].lstrip("0") != "2":
        raise HostError(f"cannot find the frame number in the file name '{_raw(knob)}' ({one!r} for frame 1)")
    return _absolute(prefix + "#" * len(number) + suffix)


def _evaluated(knob: nuke.File_Knob, frame: int) -> str:
    try:
        context = nuke.OutputContext()
    except TypeError:  # Nuke 17 constructs it "with a frame number"
        context = nuke.OutputContext(frame)
    context.setFrame(frame)
    return str(knob.getEvaluatedValue(context))


def _file(node: nuke.Node, knob: str) -> str:
    """A file knob's path as Nuke's Read would open it ("" when unset)."""
    return _sequence(node[knob])


def _absolute(path: str) -> str:
    """`path`, relative to the project directory as Nuke resolves it (Foundry Q100154), made absolute."""
    path = path.strip()
    if not path or "://" in path or posixpath.isabs(path) or re.match(r"^(?:[A-Za-z]:|\\\\)", path):
        return path
    base = _text(nuke.root(), "project_directory").strip() if nuke.root().knob("project_directory") else ""
    return posixpath.normpath(posixpath.join(base or os.getcwd().replace("\\", "/"), path))


def _raw(knob: nuke.Knob) -> str:
    """A text knob's text as typed: never Tcl-evaluated (the prompts' JSON is full of [...])."""
    return knob.getText() if isinstance(knob, nuke.String_Knob) else str(knob.value())


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
    with host.button():
        try:
            _ACTIONS[nuke.thisKnob().name()](host)
        except RotobridgeError as exc:
            host.controller.report(exc)


def knob_changed() -> None:
    """The node's knobChanged script runs this for every knob change, Nuke's and the artist's.

    Only point, box, object and matte knobs and the panel opening concern the node's host; other changes
    (the plugin's own status, prompts, ...) make none, so a host being made cannot recurse.
    """
    name = nuke.thisKnob().name()
    if name in ("showPanel", n.OBJECT) or name.startswith((n.POINT, n.BOX, n.MATTE_PREFIX)):
        host_for(nuke.thisNode()).knob_changed(nuke.thisKnob())


def update_ui() -> None:
    """Nuke's updateUI callback for Group nodes, when things change (the frame among them):
    a RotoBridge node shows the current frame's handles."""
    node = nuke.thisNode()
    if node.knob(n.PROMPTS) is not None:
        host_for(node).show_frame()


nuke.addUpdateUI(update_ui, nodeClass="Group")
