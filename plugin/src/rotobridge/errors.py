"""Every error rotobridge raises on purpose, as one table.

One root (`RotobridgeError`) so hosts and the CLI turn any of them into a message a
compositor can act on in exactly one place. Each class carries what every consumer needs:
`name` (stable: the wire's error name and the CLI's label), `exit_code` (the CLI's exit
status), `title` (a host dialog's title) and `wire` (whether the protocol carries it).
`WIRE` is the protocol's error list, derived from the classes in the order they are
defined here; `from_wire` turns an error reply back into its class, so a host can write
`except MissingFrameError` as the bridge does. Messages say what is wrong and what to do.
Stdlib only: the host side imports this module too.
"""

from __future__ import annotations

from typing import ClassVar, Sequence

#: wire name → class, for every error the protocol carries (docs/protocol.md, Errors).
WIRE: dict[str, type[RotobridgeError]] = {}


class RotobridgeError(Exception):
    """Root of every deliberate rotobridge error."""

    name: str = "error"
    exit_code: ClassVar[int] = 1
    title: ClassVar[str] = "rotobridge"
    #: set True in a class's own body to put it on the wire
    wire: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("wire", False):
            if cls.name in WIRE:
                raise TypeError(f"two error classes are called {cls.name!r}")
            WIRE[cls.name] = cls


# --- errors the protocol carries, in docs/protocol.md's order -------------------------


class ProtocolError(RotobridgeError):
    """A message does not follow the wire protocol (docs/protocol.md).

    `request_id` is the offending request's id when it could be read.
    """

    name = "bad_message"
    title = "Bridge protocol"
    wire = True
    request_id: str | None = None

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        self.request_id = request_id
        super().__init__(message)


class UnknownTypeError(ProtocolError):
    """A request of a type this bridge does not know (a newer host?)."""

    name = "unknown_type"
    wire = True


class VersionMismatchError(ProtocolError):
    """The peer speaks another major protocol version."""

    name = "version_mismatch"
    title = "Bridge version mismatch"
    wire = True


class SessionError(RotobridgeError):
    """A request names a session or state the bridge does not have."""


class UnknownSessionError(SessionError):
    name = "unknown_session"
    title = "Session lost"
    wire = True


class BusyError(SessionError):
    name = "busy"
    title = "Bridge busy"
    wire = True


class NotTrackedError(SessionError):
    name = "not_tracked"
    title = "Nothing to preview"
    wire = True


class RecipeError(RotobridgeError):
    """A recipe (or the recipe part of a request) is malformed; `field` names the culprit."""

    name = "bad_recipe"
    exit_code = 2
    title = "Invalid settings"
    wire = True
    field: str = ""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class PlateError(RotobridgeError):
    """The plate cannot be read as asked (format, channels, layer, part)."""

    name = "bad_plate"
    exit_code = 3
    title = "Plate cannot be read"
    wire = True


class MissingFrameError(PlateError):
    """A frame of the requested range is not on disk."""

    name = "missing_frame"
    title = "Plate frame missing"
    wire = True
    frame: int | None = None
    path: str = ""

    def __init__(self, frame: int, path: str) -> None:
        self.frame = frame
        self.path = path
        RotobridgeError.__init__(self, f"plate frame {frame} is missing: {path}")


class ColourError(RotobridgeError):
    """Colour configuration problem: unknown config, colourspace, display or view."""

    name = "bad_colour"
    exit_code = 4
    title = "Colour settings"
    wire = True


class ModelError(RotobridgeError):
    """The model cannot be built, its checkpoint does not fit the config, or it is not the one served."""

    name = "bad_model"
    exit_code = 5
    title = "Model"
    wire = True


class MatteExistsError(RotobridgeError):
    """Mattes would be overwritten and the caller did not ask for that."""

    name = "matte_exists"
    exit_code = 6
    title = "Mattes already exist"
    wire = True
    paths: Sequence[str] = ()

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)
        shown = ", ".join(self.paths[:3]) + (" …" if len(self.paths) > 3 else "")
        super().__init__(
            f"{len(self.paths)} matte file(s) already exist ({shown}); "
            "pass --overwrite (or overwrite: true) to replace them"
        )


class OutputError(RotobridgeError):
    """A matte could not be written."""

    name = "output_failed"
    exit_code = 7
    title = "Writing mattes failed"
    wire = True


class PathNotAllowedError(RotobridgeError):
    """A path lies outside the configured root folders."""

    name = "path_not_allowed"
    exit_code = 8
    title = "Path not allowed"
    wire = True


class CancelledError(RotobridgeError):
    """The user cancelled the operation."""

    name = "cancelled"
    exit_code = 130
    title = "Cancelled"
    wire = True


class InternalError(RotobridgeError):
    """A bug in the bridge; the message says where its traceback was logged."""

    name = "internal"
    title = "Bridge error"
    wire = True


# --- errors that stay on one side ------------------------------------------------------


class CheckpointDownloadError(ModelError):
    """An official checkpoint could not be fetched or failed its checksum."""

    name = "checkpoint_download"


class IntegrityError(ModelError):
    """An installed dependency (sam2) differs from the version rotobridge was verified with."""

    name = "integrity"


class StoppedError(CancelledError):
    """A render stopped by SIGTERM or SIGINT (a farm's pre-emption) after finishing the mattes
    under way; every matte on disk is whole, and a rerun with ``--resume`` continues it.

    Its own exit code, so a farm manager can tell "stopped, requeue" from "failed".
    """

    name = "stopped"
    exit_code = 75  # EX_TEMPFAIL: try again
    title = "Stopped"


class FarmError(RotobridgeError):
    """A farm job cannot be made or submitted (no Cuebot configured, a bad shot list or timeline); the message names the file or setting."""

    name = "farm"
    exit_code = 9
    title = "Farm job"


class ConfigError(RotobridgeError):
    """The bridge's configuration (file, environment or command line) is invalid; the message names the key."""

    name = "bad_config"
    exit_code = 2
    title = "Bridge configuration"


class DatasetError(RotobridgeError):
    """An evaluation dataset or prediction folder is malformed; the message names the file."""

    name = "bad_dataset"
    exit_code = 10
    title = "Evaluation data"


class BridgeError(RotobridgeError):
    """An error reply whose name this plugin does not know (a newer bridge); `name` is the bridge's."""

    title = "Bridge error"

    def __init__(self, name: str, message: str) -> None:
        self.name = name  # the bridge's own name for it
        super().__init__(message)


class BridgeUnreachableError(RotobridgeError):
    """No answer from the bridge in time: it is down, unreachable, or refused our key."""

    name = "bridge_unreachable"
    title = "Bridge unreachable"


class PromptError(RotobridgeError):
    """A host-side prompt edit cannot be done: unknown object, a point outside the image."""

    name = "bad_prompt"
    title = "Prompt"


class HostError(RotobridgeError):
    """The host's scene is not set up the way rotobridge needs; the message says what to change."""

    name = "host_setup"
    title = "Setup"


def from_wire(name: str, message: str) -> RotobridgeError:
    """The error an error reply (or a `finished` event's `error`) stands for, as its own class.

    Fields that only the raising side knew (a RecipeError's `field`, a MissingFrameError's
    `frame`) keep their class defaults; the message carries them for the artist.
    """
    cls = WIRE.get(name)
    if cls is None:
        return BridgeError(name, message)
    error = cls.__new__(cls)
    RotobridgeError.__init__(error, message)
    return error
