"""A TEST DOUBLE of Foundry's `nuke` Python module (Nuke 15-17), not Nuke.

Nuke cannot be installed here, so the Nuke layer (plugin/nuke) is checked against the
public `types-nuke` stubs (mypy) and against this double, which implements only the
documented behaviour that layer uses. Where Nuke is stricter than a plain Python object
would be, the double is strict too, and each such rule names the Foundry page it comes
from (FOUNDRY = https://learn.foundry.com/nuke):

- nodes: `nodes.<Class>(**knobs)` makes a node in the current group
  (`Group.begin()`/`end()`), names are unique per group ("Read1"), `node[name]`,
  `knob`, `knobs`, `addKnob`/`removeKnob`, `input`/`setInput`, `fullName`, `Class`,
  `format()` and `bbox()` (a Read's data window; in proxy mode images and so bboxes are
  scaled by the proxy scale), `toNode`, `selectedNodes`, `root()`, `thisNode`/`thisKnob`
  while a node's script runs;
- knobs: String/EvalString/Multiline_Eval_String/File/Text/Tab/Int/Double/Boolean/
  Enumeration/Channel/Format/XY/BBox/PyScript knobs with `value`/`setValue` (arrays take
  a list), `x`/`y` (`r`/`t`), `setFlag(INVISIBLE)`, `setLabel`, `tooltip`/`setTooltip`
  (nuke.Knob, FOUNDRY/developers/160/pythondevguide/_autosummary/nuke.knob.html; the
  double does not save tooltips in scripts); a PyScript_Knob's command runs when the
  button is pressed; both it and a node's `knobChanged` script run with
  `nuke.thisNode()`/`nuke.thisKnob()` set;
- `env["gui"]`, `NUKE_VERSION_MAJOR`, `executeInMainThread` (queued for the GUI's event
  loop), `ProgressTask`, `message`, `getInput`, `getFilename`, `filename(node)`,
  `frame()`, `OutputContext`, `script_directory()`, `pluginAddPath` (runs the folder's
  init.py), `menu(...).addCommand`, `addOnScriptClose`, `addUpdateUI`, `Layer`, `layers`,
  `Undo`, `tprint`;
- scripts: `scriptSaveAs`, `scriptClear`, `scriptOpen` keep every node, knob (user knobs
  included, with their class) and connection. The file is JSON, not .nk.

Rules the double enforces, with their sources:

1. Tcl. A String_Knob's `value()` is its *evaluated* value and `getText()` the text as
   typed (FOUNDRY/developers/12.2/pythonreference/nuke.String_Knob-class.html: "value:
   Get the evaluated value of this knob as a string - also see getText()"); an
   EvalString_Knob, and so a Multiline_Eval_String_Knob and a File_Knob, "evaluates its
   value as a TCL expression" (FOUNDRY/developers/131/pythondevguide/_autosummary/
   nuke.EvalString_Knob.html). The double evaluates `[...]` command substitution with the
   commands `value`, `getenv`, `file dirname`, `python` and `frame` (and `\\[` escapes);
   anything else is a Tcl error, raised as RuntimeError as `nuke.tcl` raises it, so JSON
   such as `[[1, 2]]` in an evaluated knob fails loudly. `$` variables are not modelled.
   Text_Knob, Channel_Knob, Script/PyScript knobs and the Python `knobChanged` knob are
   not evaluated (the stubs' class tree: Text_Knob and Channel_Knob are no String_Knob).
2. File names. `File_Knob.getEvaluatedValue(oc)` is the Tcl-evaluated file name with
   the frame number of the OutputContext (default: the current frame) in place of
   `####`/`%04d` (an OutputContext "describes a context in which expressions can be
   evaluated", FOUNDRY/developers/17.1/pythondevguide/_autosummary/nuke.OutputContext.html).
   `nuke.filename(node)` is "based on the root.proxy settings and which of the
   fullsize/proxy filenames are filled in", expanded, and "will still have %04d
   sequences in it" (FOUNDRY/developers/131/pythondevguide/_autosummary/nuke.filename.html):
   in proxy mode a Read with a `proxy` file answers with the proxy file. A relative file
   name is relative to the Root's `project_directory` (Foundry support article Q100154,
   "Relative file path referencing in Nuke").
3. Layers. Nuke's built-in layers take no new channels ("You can't create new channels
   into layers that are built into Nuke (such as mask)", FOUNDRY/content/comp_environment/
   channels/creating_channels.html; the reserved channels are listed on
   FOUNDRY/content/comp_environment/channels/renaming_channels.html): `Layer("mask",
   ["mask.alpha"])` creates nothing and `channels()` never lists `mask.alpha`.
4. knobChanged. A node's knobChanged script runs for every knob change, programmatic
   `setValue` included ("triggered for any knob change, including changes made
   programmatically", FOUNDRY/developers/17.1/pythondevguide/_autosummary/
   nuke.addKnobChanged.html; the node's `knobChanged` knob is the per-node form of that
   callback, FOUNDRY/developers/130/pythondevguide/callbacks.html). `double_edit` is the
   artist's change; a `setValue` in code triggers the same script.
5. No modal dialogs from callbacks. `message`/`alert`/`getInput`/`getFilename`/`ask`
   are modal: they pop up a box and wait for the user (FOUNDRY/developers/131/
   pythondevguide/_autosummary/nuke.message.html). Opened from a knobChanged script,
   from a callable run by `executeInMainThread` (FOUNDRY/developers/140/pythondevguide/
   _modules/nuke_internal/executeInMain.html: it runs "in Nuke's main thread") or from
   an updateUI callback, such a dialog nests the GUI's event loop under the artist's
   drag or under the bridge's answers, reported to freeze Nuke: the double records the
   violation (`double_state("violations")`) and raises AssertionError. A button's own
   script may open dialogs.
6. Undo. Knob changes, `addKnob` and `removeKnob` are recorded on an undo stack unless
   `nuke.Undo.disable()` is in effect ("Prevent recording undos until matching
   enable()", FOUNDRY/developers/151/pythondevguide/_autosummary/nuke.Undo.html; a
   counter, FOUNDRY/developers/17.1/pythondevguide/_autosummary/nuke.Undo.html). What
   one artist action (`double_edit`, `double_press`) changes, scripts it triggers
   included, is one undo group; `double_undo` is Ctrl+Z (`Undo.undo()`): it reverts the
   last group, and the reverted knobs trigger knobChanged like any change (rule 4).
7. Frames and handles. The Viewer draws the handles of a node's visible XY/BBox knobs
   only (`Knob.setVisible`/`visible`, FOUNDRY/developers/160/pythondevguide/_autosummary/
   nuke.knob.html): `double_handles(node)`. The artist moves the time slider with
   `double_set_frame`; updateUI callbacks run "on every node when things change ...
   during idle" (FOUNDRY/developers/130/pythondevguide/_autosummary/nuke.addUpdateUI.html),
   which here is `double_run_main_thread`. Callbacks, as in Nuke, outlive a script.
8. Progress. A ProgressTask's bar ends when the object is deleted (without the
   kKeepWhenFinished flag, FOUNDRY/developers/17.1/pythondevguide/_autosummary/
   nuke.ProgressTask.html; the developer guide's "Creating Progress Bar Dialogs" ends one
   with `del task`), not when the work stops: the record of what it showed
   (`double_state("tasks")`) outlives it, with `double_open` False from then on.

It renders nothing and reads no image files. What a test does as the artist or the event
loop is in the `double_*` helpers (not Nuke API).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import runpy
import sys
import types
from typing import Any, Callable

INVISIBLE = 0x400
REPLACE = 1
env: dict[str, Any] = {"gui": True}
NUKE_VERSION_MAJOR = 16
NUKE_VERSION_MINOR = 0
NUKE_VERSION_STRING = "16.0v1"

#: Nuke's built-in layers and their channels (rule 3).
BUILTIN_LAYERS: dict[str, list[str]] = {
    "rgba": ["rgba.red", "rgba.green", "rgba.blue", "rgba.alpha"],
    "rgb": ["rgba.red", "rgba.green", "rgba.blue"],
    "alpha": ["rgba.alpha"],
    "depth": ["depth.Z"],
    "motion": ["forward.u", "forward.v", "backward.u", "backward.v"],
    "forward": ["forward.u", "forward.v"],
    "backward": ["backward.u", "backward.v"],
    "deep": ["deep.front", "deep.back"],
    "disparity": ["disparityL.x", "disparityL.y", "disparityR.x", "disparityR.y"],
    "disparityL": ["disparityL.x", "disparityL.y"],
    "disparityR": ["disparityR.x", "disparityR.y"],
    "mask": ["mask.a"],
    "rotopaint_mask": ["rotopaint_mask.a"],
    "mask_planartrack": ["mask_planartrack.a"],
    "mask_splinewarp": ["mask_splinewarp.a"],
}


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


class OutputContext:
    """Where an expression is evaluated: a frame (rule 2). Nuke 17 constructs it "with a
    frame number" (its page above); earlier versions without one (the current frame)."""

    def __init__(self, frame: float | None = None, view: int = 0) -> None:
        if frame is None and NUKE_VERSION_MAJOR >= 17:
            raise TypeError("OutputContext(): construct with a frame number")
        self._frame = float(_STATE["frame"] if frame is None else frame)

    def frame(self) -> float:
        return self._frame

    def setFrame(self, f: float) -> bool:
        self._frame = float(f)
        return True


# --- Tcl (rule 1) -------------------------------------------------------------------


def _tcl(text: str, node: Node | None) -> str:
    """`text` with its `[...]` commands substituted."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in "[]\\":
            out.append(text[i + 1])
            i += 2
        elif c == "[":
            end = _closing(text, i)
            out.append(_tcl_command(text[i + 1:end], node))
            i = end + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _closing(text: str, start: int) -> int:
    depth, braces = 0, 0
    for i in range(start, len(text)):
        c = text[i]
        if c == "{":
            braces += 1
        elif c == "}":
            braces -= 1
        elif braces == 0 and c == "[":
            depth += 1
        elif braces == 0 and c == "]":
            depth -= 1
            if depth == 0:
                return i
    raise RuntimeError(f'missing close-bracket in "{text[start:]}"')


def _tcl_words(script: str, node: Node | None) -> list[str]:
    words, i = [], 0
    while i < len(script):
        if script[i].isspace():
            i += 1
            continue
        if script[i] == "{":
            depth, j = 0, i
            while j < len(script):
                depth += {"{": 1, "}": -1}.get(script[j], 0)
                if depth == 0:
                    break
                j += 1
            words.append(script[i + 1:j])
            i = j + 1
            continue
        j, depth = i, 0
        while j < len(script) and (depth or not script[j].isspace()):
            depth += {"[": 1, "]": -1}.get(script[j], 0)
            j += 1
        words.append(_tcl(script[i:j], node))
        i = j
    return words


def _tcl_command(script: str, node: Node | None) -> str:
    words = _tcl_words(script, node)
    if not words:
        return ""
    name, args = words[0], words[1:]
    if name == "value" and len(args) == 1:
        return str(_knob_by_path(args[0], node).value())
    if name == "getenv" and len(args) == 1:
        return os.environ.get(args[0], "")
    if name == "file" and args[:1] == ["dirname"] and len(args) == 2:
        return os.path.dirname(args[1]) or "."
    if name == "python" and len(args) == 1:
        return str(eval(args[0], {"nuke": sys.modules[__name__]}))
    if name == "frame" and not args:
        return str(_STATE["frame"])
    raise RuntimeError(f'invalid command name "{name}"')


def _knob_by_path(path: str, node: Node | None) -> Knob:
    owner, _, name = path.rpartition(".")
    if owner in ("", "this"):
        found = node
    elif owner == "root":
        found = _ROOT
    else:
        found = toNode(owner)
    if found is None or found.knob(name) is None:
        raise RuntimeError(f"no such knob {path}")
    return found[name]


# --- knobs -------------------------------------------------------------------------


class Knob:
    default: Any = ""

    def __init__(self, name: str, label: str | None = None, value: Any = None) -> None:
        self._name, self._label = name, name if label is None else label
        self._value: Any = self.default if value is None else value
        self._flags = 0
        self._tooltip = ""
        self._visible = True
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
        self._set(value)
        return True

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def setVisible(self, visible: bool) -> None:
        self._visible = bool(visible)

    def visible(self) -> bool:
        return self._visible

    def _set(self, value: Any) -> None:
        """Store a new value: recorded for undo (rule 6), then knobChanged (rule 4)."""
        old, self._value = self._value, value
        if self._node is not None and old != value:
            _record(("value", self, old, value))
        if self._node is not None:
            self._node._changed(self)


class String_Knob(Knob):
    def value(self) -> str:
        return _tcl(str(self._value), self._node)

    def getValue(self) -> str:
        return self.value()

    def getText(self) -> str:
        return str(self._value)

    def setValue(self, value: Any) -> bool:
        self._set(str(value))
        return True

    def setText(self, value: str) -> bool:
        return self.setValue(value)


class EvalString_Knob(String_Knob):
    def evaluate(self) -> str:
        return self.value()


class Multiline_Eval_String_Knob(EvalString_Knob):
    pass


_FRAME_TOKEN = re.compile(r"#+|%0?(\d*)d")


class File_Knob(EvalString_Knob):
    def getEvaluatedValue(self, oc: OutputContext | None = None) -> str:
        frame = int(oc.frame() if oc is not None else _STATE["frame"])

        def number(match: re.Match[str]) -> str:
            token = match.group(0)
            width = len(token) if token.startswith("#") else int(match.group(1) or 1)
            return f"{frame:0{width}d}"

        return _FRAME_TOKEN.sub(number, self.value())


class Text_Knob(Knob):
    def setValue(self, value: Any) -> bool:
        self._set(str(value))
        return True


class Tab_Knob(Knob):
    pass


class Script_Knob(String_Knob):
    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label, command)

    def value(self) -> str:
        return str(self._value)

    def command(self) -> str:
        return str(self._value)

    def execute(self) -> None:
        _STATE["executed"].append(f"{self.node().fullName()}.{self.name()}")
        _run_script(self.node(), self, self.command(), "button")


class PyScript_Knob(Script_Knob):
    pass


class PythonKnob(String_Knob):
    def value(self) -> str:
        return str(self._value)


class Channel_Knob(Knob):
    default = "none"

    def setValue(self, value: Any) -> bool:
        self._set(str(value))
        return True


class Int_Knob(Knob):
    default = 0

    def setValue(self, value: Any) -> bool:
        self._set(int(value))
        return True


class Double_Knob(Knob):
    default = 0.0


class Boolean_Knob(Knob):
    default = False

    def setValue(self, value: Any) -> bool:
        self._set(bool(value))
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
        self._set(self._values[value] if isinstance(value, int) else str(value))
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
            new = list(self._value)
            new[index] = float(value)
        else:
            assert len(value) == self.size
            new = [float(v) for v in value]
        self._set(new)
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


# --- nodes -------------------------------------------------------------------------

#: Knobs each node class has besides name/label/knobChanged (only those rotobridge reads).
_CLASS_KNOBS: dict[str, Callable[[], list[Knob]]] = {
    "Read": lambda: [
        File_Knob("file"), File_Knob("proxy"), Int_Knob("first", value=1), Int_Knob("last", value=1),
        Format_Knob("format", value=root()["format"].value()), String_Knob("colorspace", value="default"),
        Boolean_Knob("raw"), String_Knob("on_error", value="error"), String_Knob("before", value="hold"),
        String_Knob("after", value="hold"), String_Knob("frame"), PyScript_Knob("reload"),
    ],
    "Copy": lambda: [Channel_Knob("from0"), Channel_Knob("to0")],
    "Root": lambda: [
        File_Knob("name"), String_Knob("project_directory"), Format_Knob("format", value=Format(1920, 1080)),
        Boolean_Knob("proxy"), String_Knob("proxy_type", value="scale"), Double_Knob("proxy_scale", value=0.5),
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
            self._attach(knob)
        if parent is not None:
            self.setName(name or parent.double_unique(cls))
            parent.double_children.append(self)

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"].getText())

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
        self._attach(knob)
        _record(("add", self, knob))

    def removeKnob(self, knob: Knob) -> None:
        del self._knobs[knob.name()]
        _record(("remove", self, knob))

    def _attach(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

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

    def _changed(self, knob: Knob) -> None:
        """Run this node's knobChanged script for `knob` (rule 4)."""
        script = self._knobs.get("knobChanged")
        code = script.getText() if isinstance(script, String_Knob) else ""
        if code and knob is not script and not _STATE["loading"]:
            _run_script(self, knob, code, "knobChanged")


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


def allNodes(group: Group | None = None) -> list[Node]:
    found: list[Node] = []
    for child in (group or _ROOT).double_children:
        found.append(child)
        if isinstance(child, Group):
            found.extend(allNodes(child))
    return found


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


def script_directory() -> str:
    return os.path.dirname(_ROOT["name"].value())


def filename(node: Node, i: int = 0) -> str | None:
    """The file the node works with, the proxy file in proxy mode (rule 2)."""
    proxy = node.knob("proxy")
    use_proxy = _ROOT["proxy"].value() and isinstance(proxy, File_Knob) and proxy.getText()
    knob = proxy if use_proxy and isinstance(proxy, File_Knob) else node["file"]
    assert isinstance(knob, File_Knob)
    if i == REPLACE:
        return knob.getEvaluatedValue() or None
    text = _FRAME_TOKEN.sub(lambda m: f"%0{len(m.group(0))}d" if m.group(0).startswith("#") else m.group(0), knob.value())
    return text or None


def _proxy_scale() -> float:
    r = _ROOT
    if not r["proxy"].value():
        return 1.0
    assert r["proxy_type"].value() == "scale", "the double scales images for proxy_type 'scale' only"
    return float(r["proxy_scale"].value())


# --- undo (rule 6) -----------------------------------------------------------------


def _record(change: tuple[Any, ...]) -> None:
    if _STATE["undo_disabled"] or _STATE["undoing"] or _STATE["loading"]:
        return
    group = _STATE["undo_group"]
    if group is None:
        _STATE["undo"].append([change])  # a change outside any artist action is a step of its own
    else:
        group.append(change)


class Undo:
    """Nuke's undo stack; class-level, as Nuke's methods are."""

    @classmethod
    def disable(cls) -> None:
        _STATE["undo_disabled"] += 1

    @classmethod
    def enable(cls) -> None:
        assert _STATE["undo_disabled"] > 0, "Undo.enable() without a matching disable()"
        _STATE["undo_disabled"] -= 1

    @classmethod
    def disabled(cls) -> bool:
        return bool(_STATE["undo_disabled"])

    @classmethod
    def begin(cls, name: str | None = None) -> None:
        if _STATE["undo_group"] is None:
            _STATE["undo_group"] = []

    @classmethod
    def end(cls) -> None:
        group, _STATE["undo_group"] = _STATE["undo_group"], None
        if group:
            _STATE["undo"].append(group)

    @classmethod
    def undoSize(cls) -> int:
        return len(_STATE["undo"])

    @classmethod
    def undo(cls) -> None:
        if not _STATE["undo"]:
            return
        group = _STATE["undo"].pop()
        _STATE["undoing"] = True
        try:
            for change in reversed(group):
                if change[0] == "value":
                    change[1].setValue(change[2])
                elif change[0] == "add":
                    change[1].removeKnob(change[2])
                else:
                    change[1].addKnob(change[2])
        finally:
            _STATE["undoing"] = False


# --- main thread, progress, dialogs, plugins ---------------------------------------


def executeInMainThread(call: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
    _STATE["main_queue"].append(lambda: call(*args, **(kwargs or {})))


class _TaskRecord:
    def __init__(self) -> None:
        self.double_progress: list[int] = []
        self.double_messages: list[str] = []
        self.double_cancelled = False
        self.double_open = True


class ProgressTask:
    """Shows progress until deleted (rule 8); `double_state("tasks")` keeps what each showed."""

    def __init__(self, name: str) -> None:
        self._record = _TaskRecord()
        _STATE["tasks"].append(self._record)

    def setProgress(self, percent: int) -> None:
        self._record.double_progress.append(percent)

    def setMessage(self, message: str) -> None:
        self._record.double_messages.append(message)

    def isCancelled(self) -> bool:
        return self._record.double_cancelled

    def __del__(self) -> None:
        self._record.double_open = False


def _modal(what: str, text: str) -> None:
    """Rule 5: a modal dialog from a callback fails the test."""
    kinds = _STATE["running"]
    if env["gui"] and kinds and kinds[-1] != "button":
        problem = f"modal nuke.{what} from a {kinds[-1]} callback: {text!r}"
        _STATE["violations"].append(problem)
        raise AssertionError(problem)


def message(prompt: str) -> None:
    _modal("message", prompt)
    _STATE["messages"].append(prompt)


def alert(prompt: str) -> None:
    _modal("alert", prompt)
    _STATE["messages"].append(prompt)


def ask(prompt: str) -> bool:
    _modal("ask", prompt)
    return bool(_STATE["answers"].pop(0)) if _STATE["answers"] else False


def tprint(*args: Any, **kwargs: Any) -> None:
    _STATE["printed"].append(" ".join(map(str, args)))


def getInput(prompt: str, default: str = "") -> str | None:
    _modal("getInput", prompt)
    return _STATE["answers"].pop(0) if _STATE["answers"] else None


def getFilename(message: str, pattern: str = "", default: str = "", **kwargs: Any) -> str | None:
    _modal("getFilename", message)
    return _STATE["answers"].pop(0) if _STATE["answers"] else None


def pluginAddPath(path: str, addToSysPath: bool = True) -> None:
    _STATE["plugin_path"].append(path)
    if addToSysPath and path not in sys.path:
        sys.path.insert(0, path)
    init = os.path.join(path, "init.py")
    if os.path.isfile(init):
        runpy.run_path(init, run_name="__main__")


def addUpdateUI(call: Callable[..., Any], args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, nodeClass: str = "*") -> None:
    entry = (call, tuple(args), dict(kwargs or {}), nodeClass)
    if entry not in _CALLBACKS["updateUI"]:
        _CALLBACKS["updateUI"].append(entry)


class Layer:
    """A new layer; a built-in one takes no new channels (rule 3)."""

    def __init__(self, name: str, channels: list[str]) -> None:
        if name not in BUILTIN_LAYERS:
            _STATE["layers"][name] = list(channels)


def layers(node: Node | None = None) -> list[str]:
    return [*BUILTIN_LAYERS, *_STATE["layers"]]


def channels(node: Node | None = None) -> list[str]:
    found = [c for chans in [*BUILTIN_LAYERS.values(), *_STATE["layers"].values()] for c in chans]
    return list(dict.fromkeys(found))


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
        value = knob._value
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
            node._attach(knob)
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
    _STATE["loading"] = True
    _ROOT = Group("Root", None, "root")
    _STATE["loading"] = False
    _STATE["context"] = [_ROOT]
    _STATE["selected"] = []
    _STATE.update(undo=[], undo_group=None, undo_disabled=0, undoing=False)


def scriptOpen(filename: str) -> None:
    scriptClear()
    with open(filename, encoding="utf-8") as fh:
        data = json.load(fh)
    links: list[tuple[Node, int, str]] = []
    _STATE["loading"] = True
    try:
        _load(data, _ROOT, links)
    finally:
        _STATE["loading"] = False
    for node, index, name in links:
        node.setInput(index, toNode(name))


# --- what tests do as the artist and as Nuke's event loop --------------------------


def _run_script(node: Node, knob: Knob, code: str, kind: str) -> None:
    if len(_STATE["running"]) > 30:
        raise AssertionError(f"knobChanged recursion on {node.name()}.{knob.name()}")
    _STATE["this"].append((node, knob))
    _STATE["running"].append(kind)
    try:
        exec(compile(code, f"<{node.name()}.{knob.name()}>", "exec"), {"__name__": "__main__", "nuke": sys.modules[__name__]})
    finally:
        _STATE["running"].pop()
        _STATE["this"].pop()


def double_reset(gui: bool = True, version: int = 16) -> None:
    """A fresh session: an empty script, nothing queued, in GUI mode or not (`nuke -t`/`-x`)."""
    global NUKE_VERSION_MAJOR, NUKE_VERSION_STRING
    env["gui"] = gui
    NUKE_VERSION_MAJOR, NUKE_VERSION_STRING = version, f"{version}.0v1"
    _STATE.update(
        frame=1, main_queue=[], tasks=[], messages=[], printed=[], answers=[], plugin_path=[], layers={}, menus={}, this=[],
        executed=[], on_close=[], running=[], violations=[], loading=False,
    )
    scriptClear()


def double_select(*selection: Node) -> None:
    _STATE["selected"] = list(selection)


def double_answer(*answers: str | None) -> None:
    """What the artist types into the next getInput/getFilename dialogs."""
    _STATE["answers"].extend(answers)


def double_edit(knob: Knob, value: Any) -> None:
    """The artist changes a knob (typing, or dragging its handle in the Viewer): one undo step."""
    Undo.begin()
    try:
        knob.setValue(value)
    finally:
        Undo.end()


def double_press(knob: PyScript_Knob) -> None:
    """The artist presses a button: one undo step."""
    Undo.begin()
    try:
        knob.execute()
    finally:
        Undo.end()


def double_undo() -> None:
    """The artist presses Ctrl+Z."""
    Undo.undo()


def double_set_frame(f: int) -> None:
    """The artist moves the time slider; updateUI callbacks follow at idle (double_run_main_thread)."""
    _STATE["frame"] = int(f)


def double_handles(node: Node) -> set[str]:
    """The XY and BBox knobs whose handles the Viewer draws for `node` (rule 7)."""
    return {
        name for name, k in node.knobs().items() if isinstance(k, (XY_Knob, BBox_Knob)) and k.visible() and not k._flags & INVISIBLE
    }


def double_run_main_thread() -> int:
    """What Nuke's event loop does when idle: run what was queued for the main thread, then
    the updateUI callbacks (rule 7); how many queued calls ran."""
    queued, _STATE["main_queue"] = _STATE["main_queue"], []
    for call in queued:
        _STATE["running"].append("executeInMainThread")
        try:
            call()
        finally:
            _STATE["running"].pop()
    for call, args, kwargs, node_class in list(_CALLBACKS["updateUI"]):
        for node in allNodes():
            if node_class in ("*", node.Class()):
                _STATE["this"].append((node, node["name"]))
                _STATE["running"].append("updateUI")
                try:
                    call(*args, **kwargs)
                finally:
                    _STATE["running"].pop()
                    _STATE["this"].pop()
    return len(queued)


def double_state(key: str) -> Any:
    """Recorded session state: messages, printed, tasks, menus, layers, executed, main_queue, violations."""
    return _STATE[key]


_STATE: dict[str, Any] = {"context": [], "loading": False, "frame": 1}
#: Callbacks registered with nuke.add...(); like Nuke's, they live as long as the process.
_CALLBACKS: dict[str, list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], str]]] = {"updateUI": []}
_STATE.update(undo=[], undo_group=None, undo_disabled=0, undoing=False)
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
