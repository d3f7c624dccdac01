"""The bridge's configuration: one frozen `BridgeConfig`, from defaults, a TOML file, the
environment and the command line, in that order of precedence (the command line wins).

Every value is checked once, here, so `rotobridge serve` refuses a bad setting before it
loads a model; errors name the key and where it came from. `docs/bridge.md` documents the
keys and a test keeps its table in step with this module.
"""

from __future__ import annotations

import math
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Mapping

from rotobridge import protocol
from rotobridge import recipe as recipes
from rotobridge.errors import ConfigError

from . import security
from . import sizing as sizes

#: Served when the configuration names no model at all.
DEFAULT_MODEL = "sam2.1-hiera-large"
DEVICES = ("auto", "cuda", "mps", "cpu")
#: `torch.compile` choices, sam2's own: "off"; "image-encoder" (sam2's `compile_image_encoder`:
#: the Hiera trunk, most of a frame's work); "vos" (sam2's `vos_optimized` build, every
#: component compiled: fastest propagation, minutes of first-frame compilation, recompiles
#: per click count, so for farm renders rather than interactive sessions). model.py applies it.
COMPILE_MODES = ("off", "image-encoder", "vos")
#: Environment variable choosing the compile mode, also for `rotobridge render`.
COMPILE_ENV = "ROTOBRIDGE_COMPILE"
#: Key → environment variable that sets it (keys without one are file or command line only).
ENVIRONMENT: Mapping[str, str] = {
    "address": "ROTOBRIDGE_ADDRESS",
    "roots": "ROTOBRIDGE_ROOTS",
    "model": "ROTOBRIDGE_MODEL",
    "checkpoint": "ROTOBRIDGE_CHECKPOINT",
    "device": "ROTOBRIDGE_DEVICE",
    "session_timeout": "ROTOBRIDGE_SESSION_TIMEOUT",
    "curve_secret": "ROTOBRIDGE_CURVE_SECRET",
    "curve_authorized": "ROTOBRIDGE_CURVE_AUTHORIZED",
    "compile": COMPILE_ENV,
    **sizes.ENVIRONMENT,
}
CONFIG_ENV = "ROTOBRIDGE_CONFIG"
#: Keys holding file or folder paths: made absolute against the file's folder (file values)
#: or the working directory (environment, command line). `model_config` is a sam2 config
#: name, not a path.
_PATHS = frozenset({"roots", "checkpoint", "curve_secret", "curve_authorized"})


@dataclass(frozen=True)
class BridgeConfig:
    """What `rotobridge serve` runs with. Paths are absolute; `roots` are real paths."""

    address: str = protocol.DEFAULT_ADDRESS
    #: folders plates, mattes and OCIO config files must lie in; empty: the home folder
    roots: tuple[str, ...] = ()
    #: registry model name (docs: checkpoints/README.md)
    model: str | None = None
    #: sam2 config name for `checkpoint` when it is not a registry model's
    model_config: str | None = None
    checkpoint: str | None = None
    overrides: tuple[str, ...] = ()
    device: str = "auto"
    #: seconds without a request or a running job after which a session is closed
    session_timeout: float = 1800.0
    #: the bridge's CURVE secret key file (`rotobridge keys`), enabling encryption
    curve_secret: str | None = None
    #: folder of the public key files (`*.key`) of the clients allowed in
    curve_authorized: str | None = None
    #: torch.compile of the model, sam2's own (model.COMPILE_MODES)
    compile: str = "off"
    #: plate decoding threads (0: one per core), matte writing threads (0: half the cores)
    decode_threads: int = 0
    write_threads: int = 0
    #: memory for frames read ahead of the model, decode buffers included
    read_ahead_mib: int = sizes.DEFAULT_READ_AHEAD_MIB

    def __post_init__(self) -> None:
        if self.compile not in COMPILE_MODES:
            raise ConfigError(f"compile: {self.compile!r} is not one of {', '.join(COMPILE_MODES)}")
        self.sizing  # checks the pool sizes and the budget, naming the key
        if self.device not in DEVICES:
            raise ConfigError(f"device: {self.device!r} is not one of {', '.join(DEVICES)}")
        if not (math.isfinite(self.session_timeout) and self.session_timeout > 0):
            raise ConfigError(f"session_timeout: must be a positive number of seconds, got {self.session_timeout}")
        if self.checkpoint and not (self.model or self.model_config):
            raise ConfigError("model_config: is required with checkpoint unless model names a registry model")
        if (self.curve_secret is None) != (self.curve_authorized is None):
            raise ConfigError("curve_secret and curve_authorized: set both to use CURVE, or neither")
        security.check_bind_address(self.address, curve=self.curve)

    @property
    def sizing(self) -> sizes.Sizing:
        """The pipeline's pool sizes and read-ahead budget (sizing.py)."""
        return sizes.Sizing(self.decode_threads, self.write_threads, self.read_ahead_mib)

    @property
    def curve(self) -> bool:
        return self.curve_secret is not None

    @property
    def allowed_roots(self) -> tuple[str, ...]:
        """The configured roots, else the home folder of the user running the bridge."""
        return self.roots or (os.path.realpath(Path.home()),)

    def model_section(self) -> recipes.Model:
        """The served model as a recipe's model section: what `open` checks and `export` writes."""
        name = self.model if (self.model or self.checkpoint) else DEFAULT_MODEL
        return recipes.Model(name=name, config=self.model_config, checkpoint=self.checkpoint, overrides=self.overrides)


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: must be a non-empty string, got {value!r}")
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list of strings, got {value!r}")
    return tuple(_string(v, f"{key}[{i}]") for i, v in enumerate(value))


def _count(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: must be a whole number, got {value!r}")
    return value


def _seconds(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: must be a number of seconds, got {value!r}")
    return float(value)


_TYPES: Mapping[str, Callable[[Any, str], Any]] = {
    f.name: {
        "roots": _strings,
        "overrides": _strings,
        "session_timeout": _seconds,
        "decode_threads": _count,
        "write_threads": _count,
        "read_ahead_mib": _count,
    }.get(f.name, _string)
    for f in fields(BridgeConfig)
}


def _absolute(key: str, value: Any, base: str) -> Any:
    """Paths of `key` made absolute against `base` (roots also resolved through symlinks)."""
    if key not in _PATHS:
        return value
    if key == "roots":
        return tuple(os.path.realpath(os.path.join(base, os.path.expanduser(v))) for v in value)
    return os.path.abspath(os.path.join(base, os.path.expanduser(value)))


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    values = {}
    for key, value in data.items():
        if key not in _TYPES:
            raise ConfigError(f"{path}: {key}: unknown key (known: {', '.join(_TYPES)})")
        values[key] = _absolute(key, _TYPES[key](value, f"{path}: {key}"), str(path.parent))
    return values


def _from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, var in ENVIRONMENT.items():
        text = env.get(var)
        if not text:
            continue
        if key == "roots":
            value: Any = tuple(p for p in text.split(os.pathsep) if p)
        elif key == "session_timeout":
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(f"${var}: {text!r} is not a number of seconds") from None
        elif _TYPES[key] is _count:
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"${var}: {text!r} is not a whole number") from None
        else:
            value = text
        values[key] = _absolute(key, value, os.getcwd())
    return values


def config_file(given: str | None, env: Mapping[str, str]) -> Path | None:
    """`given`, else $ROTOBRIDGE_CONFIG, else ~/.config/rotobridge/bridge.toml if it exists."""
    if given or env.get(CONFIG_ENV):
        return Path(given or env[CONFIG_ENV]).expanduser()
    default = Path.home() / ".config" / "rotobridge" / "bridge.toml"
    return default if default.is_file() else None


def load(
    cli: Mapping[str, Any] | None = None, *, file: str | None = None, env: Mapping[str, str] | None = None
) -> BridgeConfig:
    """The configuration from defaults < file < environment < `cli` (keys with None are unset)."""
    env = os.environ if env is None else env
    path = config_file(file, env)
    values = _from_file(path) if path is not None else {}
    values.update(_from_environment(env))
    for key, value in (cli or {}).items():
        if key not in _TYPES:
            raise ValueError(f"{key!r} is not a configuration key")
        if value is not None:
            values[key] = _absolute(key, tuple(value) if isinstance(value, list) else value, os.getcwd())
    return BridgeConfig(**values)
