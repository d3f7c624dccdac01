"""Bridge configuration: precedence, validation naming the key, and docs/bridge.md kept true."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

import pytest

from rotobridge import recipe as recipes
from rotobridge.bridge import cli
from rotobridge.bridge import config as configs
from rotobridge.bridge.config import BridgeConfig
from rotobridge.errors import ConfigError

DOC = (Path(__file__).resolve().parents[2] / "docs" / "bridge.md").read_text()


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No developer's ~/.config/rotobridge/bridge.toml leaks in."""
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _load(tmp_path: Path, toml: str | None = None, env: dict[str, str] | None = None, cli_values: dict[str, Any] | None = None) -> BridgeConfig:
    path = None
    if toml is not None:
        path = tmp_path / "bridge.toml"
        path.write_text(toml)
    return configs.load(cli_values, file=str(path) if path else None, env=env or {})


def test_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config == BridgeConfig()
    assert config.address == "tcp://127.0.0.1:47400" and config.device == "auto" and config.session_timeout == 1800
    assert config.allowed_roots == (str(tmp_path),) and not config.curve
    assert config.model_section() == recipes.Model(name="sam2.1-hiera-large")


def test_command_line_beats_environment_beats_file_beats_defaults(tmp_path: Path) -> None:
    toml = 'address = "tcp://127.0.0.1:1"\ndevice = "cuda"\nsession_timeout = 60\nmodel = "sam2.1-hiera-small"\nroots = ["a", "b"]\n'
    env = {"ROTOBRIDGE_DEVICE": "mps", "ROTOBRIDGE_SESSION_TIMEOUT": "90", "ROTOBRIDGE_ROOTS": os.pathsep.join(["/x", "/y"])}
    config = _load(tmp_path, toml, env, {"session_timeout": 120.0, "address": None})
    assert config.address == "tcp://127.0.0.1:1"  # file (the command line left it unset)
    assert config.device == "mps"  # environment over file
    assert config.session_timeout == 120  # command line over both
    assert config.model == "sam2.1-hiera-small" and config.roots == ("/x", "/y")
    assert _load(tmp_path, toml).roots == (str(tmp_path / "a"), str(tmp_path / "b"))  # relative to the file


def test_config_file_from_environment_then_home(tmp_path: Path) -> None:
    home_file = tmp_path / ".config" / "rotobridge" / "bridge.toml"
    home_file.parent.mkdir(parents=True)
    home_file.write_text('device = "cpu"\n')
    (tmp_path / "other.toml").write_text('device = "cuda"\n')
    assert configs.load(env={}).device == "cpu"
    assert configs.load(env={"ROTOBRIDGE_CONFIG": str(tmp_path / "other.toml")}).device == "cuda"
    assert configs.load(env={"ROTOBRIDGE_CONFIG": str(tmp_path / "other.toml")}, file=str(home_file)).device == "cpu"


@pytest.mark.parametrize(
    "toml,env,words",
    [
        ('adress = "tcp://127.0.0.1:1"\n', {}, "adress: unknown key"),
        ("session_timeout = true\n", {}, "session_timeout: must be a number of seconds"),
        ('roots = "/shows"\n', {}, "roots: must be a list of strings"),
        ("device = 'tpu'\n", {}, "device: 'tpu' is not one of auto, cuda, mps, cpu"),
        ("address = \n", {}, "is not valid TOML"),
        ("", {"ROTOBRIDGE_SESSION_TIMEOUT": "soon"}, "$ROTOBRIDGE_SESSION_TIMEOUT: 'soon' is not a number"),
        ("", {"ROTOBRIDGE_SESSION_TIMEOUT": "-5"}, "session_timeout: must be a positive number"),
        ('checkpoint = "m.pt"\n', {}, "model_config: is required with checkpoint"),
        ('curve_secret = "k"\n', {}, "set both to use CURVE"),
        ('address = "tcp://0.0.0.0:47400"\n', {}, "needs CURVE encryption"),
        ("", {"ROTOBRIDGE_ADDRESS": "tcp://*:47400"}, "needs CURVE encryption"),
        ('address = "47400"\n', {}, "is not tcp://HOST:PORT"),
    ],
)
def test_bad_settings_name_their_key(tmp_path: Path, toml: str, env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, toml, env)
    assert words in str(err.value)


def test_curve_allows_other_addresses_and_resolves_paths(tmp_path: Path) -> None:
    toml = 'address = "tcp://0.0.0.0:47400"\ncurve_secret = "keys/bridge.key_secret"\ncurve_authorized = "~/clients"\n'
    config = _load(tmp_path, toml)
    assert config.curve and config.curve_secret == str(tmp_path / "keys" / "bridge.key_secret")
    assert config.curve_authorized == os.path.expanduser("~/clients")


def test_checkpoint_with_config_is_the_served_model_section(tmp_path: Path) -> None:
    config = _load(tmp_path, cli_values={"model_config": "configs/x.yaml", "checkpoint": "m.pt", "overrides": ["++model.image_size=512"]})
    assert config.model_section() == recipes.Model(
        config="configs/x.yaml", checkpoint=os.path.abspath("m.pt"), overrides=("++model.image_size=512",)
    )


def test_serve_refuses_a_bad_configuration_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bridge.toml").write_text("colour = 1\n")
    monkeypatch.setenv("ROTOBRIDGE_CONFIG", str(tmp_path / "bridge.toml"))
    assert cli.main(["serve"]) == 2
    assert "bridge.toml: colour: unknown key" in capsys.readouterr().err
    monkeypatch.delenv("ROTOBRIDGE_CONFIG")
    assert cli.main(["serve", "--address", "tcp://0.0.0.0:47400", "--model", "sam2.1-hiera-tiny"]) == 2
    assert "bad_config: address: tcp://0.0.0.0:47400 is reachable from other machines" in capsys.readouterr().err


def _doc_rows() -> dict[str, list[str]]:
    section = DOC.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in section.splitlines() if line.startswith("| `")]
    return {row[0].strip("`"): row for row in rows}


def test_doc_table_lists_every_key_with_its_environment_variable_and_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["serve", "--help"])
    usage = capsys.readouterr().out
    rows = _doc_rows()
    assert list(rows) == [f.name for f in dataclasses.fields(BridgeConfig)]
    for key, row in rows.items():
        assert re.findall(r"`(ROTOBRIDGE_\w+)`", row[2]) == ([configs.ENVIRONMENT[key]] if key in configs.ENVIRONMENT else [])
        flags = re.findall(r"`(--[\w-]+)`", row[3])
        assert len(flags) == 1 and f"{flags[0]} " in usage, (key, flags)
