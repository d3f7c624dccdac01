"""A TEST DOUBLE of Foundry's `nuke` Python module (Nuke 15/16), not Nuke.

Nuke cannot be installed here, so the Nuke layer (plugin/nuke) is checked against the
public `types-nuke` stubs (mypy) and against this double, which implements only the
documented behaviour that layer uses, as the Nuke Python reference describes it:

- nodes: `nodes.<Class>(**knobs)` makes a node in the current group
  (`Group.begin()`/`end()`), names are unique per group ("Read1"), `node[name]`,
  `knob`, `knobs`, `addKnob`/`removeKnob`, `input`/`setInput`, `fullName`, `Class`,
  `format()` and `bbox()` (a Read's data window; in proxy mode images and so bboxes are
  scaled by the proxy scale), `toNode`, `selectedNodes`, `root()`, `thisNode`/`thisKnob`
  while a node's script runs;
- knobs: String/Multiline_Eval_String/File/Text/Tab/Int/Double/Boolean/Enumeration/
  Format/XY/BBox/PyScript knobs with `value`/`setValue` (arrays take a list), `x`/`y`
  (`r`/`t`), `setFlag(INVISIBLE)`, `setLabel`, `tooltip`/`setTooltip` (nuke.Knob,
  learn.foundry.com/nuke/developers/160/pythondevguide/_autosummary/nuke.knob.html; the
  double does not save tooltips in scripts); a PyScript_Knob's command runs when the
  button is pressed, a node's `knobChanged` script when the artist changes a knob; both
  run with `nuke.thisNode()`/`nuke.thisKnob()` set;
- `env["gui"]`, `executeInMainThread` (queued for the GUI's event loop), `ProgressTask`
  (setProgress, setMessage, isCancelled; ends when deleted), `message`, `getInput`,
  `getFilename`, `filename(node)`, `frame()`, `pluginAddPath` (runs the folder's
  init.py), `menu(...).addCommand`, `addOnScriptClose`, `Layer`, `layers`, `tprint`;
- scripts: `scriptSaveAs`, `scriptClear`, `scriptOpen` keep every node, knob (user knobs
  included) and connection. The file is JSON, not .nk.

It renders nothing, evaluates no TCL and reads no files. What a test does as the artist
or the event loop is in the `double_*` helpers (not Nuke API).
"""

from __future__ import annotations

import itertools
import json
import os
import runpy
import sys
import types
from typing import Any, Callable

INVISIBLE = 0x400
env: dict[str, Any] = {"gui": True}


class Format:
    def __init__(self, width: int, height: int) -> None:
        self._w, self._h = width, height

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h


class Info:
    def __init__(self, x: float, y: float, w: float, h: float) -> None:
        self._box = (x, y, w, h)

    def x(self) -> float:
        return self._box[0]

    def y(self) -> float:
        return self._box[1]

    def w(self) -> float:
        return self._box[2]

    def h(self) -> float:
        return self._box[3]


# --- knobs -------------------------------------------------------------------------


class Knob:
    default: Any = ""

    def __init__(self, name: str, label: str | None = None, value: Any = None) -> None:
        self._name, self._label = name, name if label is None else label
        self._value: Any = self.default if value is None else value
        self._flags = 0
        self._tooltip = ""
        self._node: Node | None = None

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def setLabel(self, label: str) -> None:
        self._label = label

    def tooltip(self) -> str:
        return self._tooltip

    def setTooltip(self, tooltip: str) -> None:
        self._tooltip = tooltip

    def node(self) -> Node:
        assert self._node is not None
        return self._node

    def value(self) -> Any:
        return self._value

    def setValue(self, value: Any) -> bool:
        self._value = value
        return True

    def setFlag(self, flag: int) -> None:
        self._flags |= flag


class String_Knob(Knob):
    def setValue(self, value: Any) -> bool:
        self._value = str(value)
        return True


class Multiline_Eval_String_Knob(String_Knob):
    pass


class File_Knob(String_Knob):
    pass


class Text_Knob(String_Knob):
    pass


class Tab_Knob(Knob):
    pass


class PythonKnob(String_Knob):
    pass


class Channel_Knob(String_Knob):
    default = "none"


class Int_Knob(Knob):
    default = 0

    def setValue(self, value: Any) -> bool:
        self._value = int(value)
        return True


class Double_Knob(Knob):
    default = 0.0


class Boolean_Knob(Knob):
    default = False

    def setValue(self, value: Any) -> bool:
        self._value = bool(value)
        return True


class Enumeration_Knob(Knob):
    def __init__(self, name: str, label: str | None = None, values: list[str] | None = None) -> None:
        super().__init__(name, label)
        self._values = list(values or [])
        self._value = self._values[0] if self._values else ""

    def values(self) -> list[str]:
        return list(self._values)

    def setValues(self, values: list[str]) -> None:
        self._values = list(values)
        if self._value not in self._values:
            self._value = self._values[0] if self._values else ""

    def setValue(self, value: Any) -> bool:
        self._value = self._values[value] if isinstance(value, int) else str(value)
        return True


class Format_Knob(Knob):
    pass


class _Array_Knob(Knob):
    size = 2

    def __init__(self, name: str, label: str | None = None) -> None:
        super().__init__(name, label, [0.0] * self.size)

    def value(self, index: int | None = None) -> Any:
        return list(self._value) if index is None else self._value[index]

    def setValue(self, value: Any, index: int = -1) -> bool:
        if index >= 0:
            self._value[index] = float(value)
        else:
            assert len(value) == self.size
            self._value = [float(v) for v in value]
        return True


class XY_Knob(_Array_Knob):
    def x(self) -> float:
        return float(self._value[0])

    def y(self) -> float:
        return float(self._value[1])


class BBox_Knob(_Array_Knob):
    size = 4

    def x(self) -> float:
        return float(self._value[0])

    def y(self) -> float:
        return float(self._value[1])

    def r(self) -> float:
        return float(self._value[2])

    def t(self) -> float:
        return float(self._value[3])


class Script_Knob(Knob):
    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label, command)

    def command(self) -> str:
        return str(self._value)

    def execute(self) -> None:
        _STATE["executed"].append(f"{self.node().fullName()}.{self.name()}")
        _run_script(self.node(), self, self.command())


class PyScript_Knob(Script_Knob):
    pass


# --- nodes -------------------------------------------------------------------------

#: Knobs each node class has besides name/label/knobChanged (only those rotobridge reads).
_CLASS_KNOBS: dict[str, Callable[[], list[Knob]]] = {
    "Read": lambda: [
        File_Knob("file"), Int_Knob("first", value=1), Int_Knob("last", value=1), Format_Knob("format", value=root()["format"].value()),
        String_Knob("colorspace", value="default"), Boolean_Knob("raw"), String_Knob("on_error", value="error"),
        String_Knob("frame"), PyScript_Knob("reload"),
    ],
    "Copy": lambda: [Channel_Knob("from0"), Channel_Knob("to0")],
    "Root": lambda: [
        File_Knob("name"), Format_Knob("format", value=Format(1920, 1080)), Boolean_Knob("proxy"),
        String_Knob("proxy_type", value="scale"), Double_Knob("proxy_scale", value=0.5),
        Format_Knob("proxy_format", value=Format(960, 540)), String_Knob("colorManagement", value="OCIO"),
        String_Knob("OCIO_config", value="fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1"), File_Knob("customOCIOConfigPath"),
    ],
}


class Node:
    def __init__(self, cls: str, parent: Group | None, name: str | None = None) -> None:
        self._class, self._parent = cls, parent
        self._knobs: dict[str, Knob] = {}
        self._inputs: dict[int, Node] = {}
        self.double_data_window: tuple[float, float, float, float] | None = None  # a Read's, full size
        for knob in [String_Knob("name"), String_Knob("label"), PythonKnob("knobChanged"), *_CLASS_KNOBS.get(cls, list)()]:
            self.addKnob(knob)
        if parent is not None:
            self.setName(name or parent.double_unique(cls))
            parent.double_children.append(self)

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"].value())

    def setName(self, name: str, uncollide: bool = False) -> None:
        parent = self._parent
        if uncollide and parent is not None and parent.node(name) not in (None, self):
            name = parent.double_unique(name.rstrip("0123456789"))
        self._knobs["name"].setValue(name)

    def fullName(self) -> str:
        parent = self._parent
        return self.name() if parent is None or parent is _ROOT else f"{parent.fullName()}.{self.name()}"

    def knob(self, name: str) -> Knob | None:
        return self._knobs.get(name)

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def addKnob(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

    def removeKnob(self, knob: Knob) -> None:
        del self._knobs[knob.name()]

    def input(self, index: int) -> Node | None:
        return self._inputs.get(index)

    def setInput(self, index: int, node: Node | None) -> bool:
        if node is None:
            self._inputs.pop(index, None)
        else:
            self._inputs[index] = node
        return True

    def format(self) -> Format:
        knob = self._knobs.get("format")
        return knob.value() if knob else root()["format"].value()

    def bbox(self) -> Info:
        x, y, r, t = self.double_data_window or (0, 0, self.format().width(), self.format().height())
        scale = _proxy_scale()
        return Info(x * scale, y * scale, (r - x) * scale, (t - y) * scale)


class Group(Node):
    def __init__(self, cls: str, parent: Group | None, name: str | None = None) -> None:
        self.double_children: list[Node] = []
        super().__init__(cls, parent, name)

    def double_unique(self, cls: str) -> str:
        names = {n.name() for n in self.double_children}
        return next(f"{cls}{i}" for i in itertools.count(1) if f"{cls}{i}" not in names)

    def begin(self) -> Group:
        _STATE["context"].append(self)
        return self

    def end(self) -> None:
        _STATE["context"].pop()

    def __enter__(self) -> Group:
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def nodes(self) -> list[Node]:
        return list(self.double_children)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.double_children if n.name() == name), None)


def _make(cls: str, name: str | None = None) -> Node:
    parent = _STATE["context"][-1]
    return Group(cls, parent, name) if cls in ("Group", "Root") else Node(cls, parent, name)


class _Nodes:
    def __getattr__(self, cls: str) -> Callable[..., Node]:
        def make(**knobs: Any) -> Node:
            node = _make(cls, knobs.pop("name", None))
            for key, value in knobs.items():
                node[key].setValue(value)
            return node

        return make


nodes = _Nodes()


def root() -> Group:
    return _ROOT


def toNode(name: str) -> Node | None:
    group: Group = _ROOT
    node: Node | None = None
    for part in name.split("."):
        node = group.node(part)
        if not isinstance(node, Group):
            break
        group = node
    return node


def selectedNodes() -> list[Node]:
    return list(_STATE["selected"])


def thisNode() -> Node:
    return _STATE["this"][-1][0]


def thisKnob() -> Knob:
    return _STATE["this"][-1][1]


def frame(f: int | None = None) -> int:
    if f is not None:
        _STATE["frame"] = f
    return int(_STATE["frame"])


def filename(node: Node, i: int = 0) -> str | None:
    return str(node["file"].value()) or None


def _proxy_scale() -> float:
    r = _ROOT
    if not r["proxy"].value():
        return 1.0
    assert r["proxy_type"].value() == "scale", "the double scales images for proxy_type 'scale' only"
    return float(r["proxy_scale"].value())


# --- main thread, progress, dialogs, plugins ---------------------------------------


def executeInMainThread(call: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
    _STATE["main_queue"].append(lambda: call(*args, **(kwargs or {})))


class ProgressTask:
    def __init__(self, name: str) -> None:
        self.double_progress: list[int] = []
        self.double_messages: list[str] = []
        self.double_cancelled = False
        self.double_open = True
        _STATE["tasks"].append(self)

    def setProgress(self, percent: int) -> None:
        self.double_progress.append(percent)

    def setMessage(self, message: str) -> None:
        self.double_messages.append(message)

    def isCancelled(self) -> bool:
        return self.double_cancelled

    def __del__(self) -> None:
        self.double_open = False


def message(prompt: str) -> None:
    _STATE["messages"].append(prompt)


def tprint(*args: Any, **kwargs: Any) -> None:
    _STATE["printed"].append(" ".join(map(str, args)))


def getInput(prompt: str, default: str = "") -> str | None:
    return _STATE["answers"].pop(0) if _STATE["answers"] else None


def getFilename(message: str, pattern: str = "", default: str = "", **kwargs: Any) -> str | None:
    return getInput(message, default)


def pluginAddPath(path: str, addToSysPath: bool = True) -> None:
    _STATE["plugin_path"].append(path)
    if addToSysPath and path not in sys.path:
        sys.path.insert(0, path)
    init = os.path.join(path, "init.py")
    if os.path.isfile(init):
        runpy.run_path(init, run_name="__main__")


class Layer:
    def __init__(self, name: str, channels: list[str]) -> None:
        _STATE["layers"][name] = list(channels)


def layers(node: Node | None = None) -> list[str]:
    return ["rgba", *_STATE["layers"]]


class Menu:
    def __init__(self, name: str) -> None:
        self.double_commands: dict[str, str] = {}

    def addCommand(self, name: str, command: str = "", shortcut: str = "", icon: str = "") -> None:
        self.double_commands[name] = command


def menu(name: str) -> Menu:
    return _STATE["menus"].setdefault(name, Menu(name))


# --- scripts -----------------------------------------------------------------------


def _save(node: Node) -> dict[str, Any]:
    knobs = []
    for knob in node.knobs().values():
        value = knob.value()
        if isinstance(value, Format):
            value = {"format": [value.width(), value.height()]}
        extra = knob.values() if isinstance(knob, Enumeration_Knob) else None
        knobs.append({"class": knob.Class(), "name": knob.name(), "label": knob.label(), "value": value, "flags": knob._flags, "values": extra})
    children = node.double_children if isinstance(node, Group) else []
    return {
        "class": node.Class(),
        "knobs": knobs,
        "data_window": node.double_data_window,
        "inputs": {i: n.fullName() for i, n in node._inputs.items()},
        "children": [_save(c) for c in children],
    }


def _load(data: dict[str, Any], node: Node, links: list[tuple[Node, int, str]]) -> None:
    for item in data["knobs"]:
        knob = node.knob(item["name"])
        if knob is None or knob.Class() != item["class"]:
            cls = globals()[item["class"]]
            knob = cls(item["name"], item["label"], item["values"]) if cls is Enumeration_Knob else cls(item["name"], item["label"])
            node.addKnob(knob)
        value = item["value"]
        if isinstance(value, dict):
            value = Format(*value["format"])
        knob._value, knob._flags, knob._label = value, item["flags"], item["label"]
        if isinstance(knob, Enumeration_Knob):
            knob._values = list(item["values"])
    node.double_data_window = tuple(data["data_window"]) if data["data_window"] else None
    links.extend((node, int(i), name) for i, name in data["inputs"].items())
    if isinstance(node, Group):
        with node:
            for child in data["children"]:
                _load(child, _make(child["class"]), links)


def scriptSaveAs(filename: str, overwrite: int = 0) -> None:
    _ROOT["name"].setValue(filename)
    with open(filename, "w", encoding="utf-8") as fh:
        json.dump(_save(_ROOT), fh)


def addOnScriptClose(call: Callable[[], Any]) -> None:
    _STATE["on_close"].append(call)


def scriptClear() -> None:
    global _ROOT
    for call in _STATE.get("on_close", []):
        call()
    _ROOT = Group("Root", None, "root")
    _STATE["context"] = [_ROOT]
    _STATE["selected"] = []


def scriptOpen(filename: str) -> None:
    scriptClear()
    with open(filename, encoding="utf-8") as fh:
        data = json.load(fh)
    links: list[tuple[Node, int, str]] = []
    _load(data, _ROOT, links)
    for node, index, name in links:
        node.setInput(index, toNode(name))


# --- what tests do as the artist and as Nuke's event loop --------------------------


def _run_script(node: Node, knob: Knob, code: str) -> None:
    _STATE["this"].append((node, knob))
    try:
        exec(compile(code, f"<{node.name()}.{knob.name()}>", "exec"), {"__name__": "__main__", "nuke": sys.modules[__name__]})
    finally:
        _STATE["this"].pop()


def double_reset(gui: bool = True) -> None:
    """A fresh session: an empty script, nothing queued, in GUI mode or not (`nuke -t`/`-x`)."""
    env["gui"] = gui
    _STATE.update(
        frame=1, main_queue=[], tasks=[], messages=[], printed=[], answers=[], plugin_path=[], layers={}, menus={}, this=[],
        executed=[], on_close=[],
    )
    scriptClear()


def double_select(*selection: Node) -> None:
    _STATE["selected"] = list(selection)


def double_answer(*answers: str | None) -> None:
    """What the artist types into the next getInput/getFilename dialogs."""
    _STATE["answers"].extend(answers)


def double_edit(knob: Knob, value: Any) -> None:
    """The artist changes a knob (typing, or dragging its handle in the Viewer)."""
    knob.setValue(value)
    script = str(knob.node()["knobChanged"].value())
    if script:
        _run_script(knob.node(), knob, script)


def double_press(knob: PyScript_Knob) -> None:
    """The artist presses a button."""
    knob.execute()


def double_run_main_thread() -> int:
    """Run what was queued for the main thread, as Nuke's event loop does; how many ran."""
    queued, _STATE["main_queue"] = _STATE["main_queue"], []
    for call in queued:
        call()
    return len(queued)


def double_state(key: str) -> Any:
    """Recorded session state: messages, printed, tasks, menus, layers, executed, main_queue."""
    return _STATE[key]


_STATE: dict[str, Any] = {"context": []}
_ROOT = Group("Root", None, "root")
double_reset()

#: `nukescripts`, the Python package that ships with Nuke, as far as menu.py uses it.
nukescripts = types.ModuleType("nukescripts")
nukescripts_panels = types.ModuleType("nukescripts.panels")
nukescripts_panels.registered = []
nukescripts_panels.registerWidgetAsPanel = lambda widget, name, id, create=False: nukescripts_panels.registered.append(
    (widget, name, id)
)
nukescripts.panels = nukescripts_panels
