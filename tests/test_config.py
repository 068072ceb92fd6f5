"""Config: strict schema, every key shipped and documented, environment overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec
import pytest

from qahub_lite.config import Config, ConfigError, default_config_text, load_config

ROOT = Path(__file__).resolve().parent.parent


def _schema_keys(struct=Config, prefix="") -> set[str]:
    keys = set()
    for field in msgspec.structs.fields(struct):
        if field.name == "base_dir":
            continue
        if isinstance(field.type, type) and issubclass(field.type, msgspec.Struct):
            keys |= _schema_keys(field.type, f"{prefix}{field.name}.")
        else:
            keys.add(prefix + field.name)
    return keys


def _toml_keys(data: dict, prefix="") -> set[str]:
    keys = set()
    for key, value in data.items():
        if isinstance(value, dict):
            keys |= _toml_keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_every_key_is_in_the_shipped_file_with_its_default():
    shipped = tomllib.loads(default_config_text())
    assert _toml_keys(shipped) == _schema_keys()
    defaults = msgspec.to_builtins(Config())
    for dotted in _schema_keys():
        section, key = dotted.split(".", 1)
        assert shipped[section][key] == defaults[section][key], f"{dotted}: shipped value is not the default"


def test_every_key_has_a_comment():
    lines = default_config_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#"), f"key without a comment above it: {line!r}"


def test_top_level_qahub_toml_is_the_shipped_one():
    assert (ROOT / "qahub.toml").read_text() == default_config_text()


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "qahub.toml"
    path.write_text("[server]\nprot = 8080\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config(path, environ={})


def test_unknown_section_is_named(tmp_path):
    path = tmp_path / "qahub.toml"
    path.write_text("[serverr]\nport = 8080\n")
    with pytest.raises(ConfigError, match="serverr"):
        load_config(path, environ={})


def test_wrong_type_names_the_key(tmp_path):
    path = tmp_path / "qahub.toml"
    path.write_text('[server]\nport = "eighty"\n')
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_config(path, environ={})


def test_invalid_toml_is_reported(tmp_path):
    path = tmp_path / "qahub.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, environ={})


def test_paths_are_relative_to_the_config_file(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "qahub.toml").write_text('[storage]\ndata_dir = "var"\n')
    config = load_config(folder / "qahub.toml", environ={})
    assert config.data_dir == (folder / "var").resolve()


def test_environment_overrides(tmp_path):
    path = tmp_path / "qahub.toml"
    path.write_text("[server]\nport = 8080\n")
    env = {"QAHUB_PORT": "9191", "QAHUB_HOST": "0.0.0.0", "ATTACHMENT_MAX_BYTES": "1234",
           "QAHUB_RETENTION_UNLINKED_DAYS": "7", "QAHUB_DATA_DIR": str(tmp_path / "d")}
    config = load_config(path, environ=env)
    assert config.server.port == 9191
    assert config.server.host == "0.0.0.0"
    assert config.attachments.max_bytes == 1234
    assert config.retention.unlinked_days == 7
    assert config.data_dir == (tmp_path / "d").resolve()


def test_bad_environment_value_names_the_variable(tmp_path):
    with pytest.raises(ConfigError, match="QAHUB_PORT"):
        load_config(None, environ={"QAHUB_PORT": "many"})


def test_public_url_defaults_to_host_and_port():
    config = load_config(None, environ={"QAHUB_PORT": "8181"})
    assert config.public_url == "http://127.0.0.1:8181"
    config = load_config(None, environ={"QAHUB_PUBLIC_URL": "https://qa.example.org/"})
    assert config.public_url == "https://qa.example.org"
