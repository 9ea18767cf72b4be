"""Reading the configuration file: YAML, ``${VAR}`` expansion, validation into
:class:`~ws_artifacts.core.config.Config`, and errors that name the file and the key path
(``workspaces.team-a.credentials.role_arn``) but never a value, since values may be secrets.

The file is named by ``WS_ARTIFACTS_CONFIG`` (or ``--config`` on the CLI). Every secret it
holds is remembered for log redaction (:mod:`.redact`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ws_artifacts.core import redact as _redact
from ws_artifacts.core.config import Config, secret_values
from ws_artifacts.core.errors import ConfigError

__all__ = ["CONFIG_ENV_VAR", "load_config", "parse_config"]

_logger = logging.getLogger(__name__)

#: Environment variable naming the configuration file.
CONFIG_ENV_VAR = "WS_ARTIFACTS_CONFIG"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_config(
    data: Any, *, source: str = "<config>", env: dict[str, str] | None = None
) -> Config:
    """Validate already-parsed YAML data, expanding ``${VAR}`` from ``env`` (default: os.environ).

    Raises:
        ConfigError: With the source, the key path and what is wrong; never a value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}.")
    expanded = _expand(data, env if env is not None else dict(os.environ), source, ())
    try:
        config = Config.model_validate(expanded)
    except ValidationError as err:
        problems = "; ".join(
            f"{_loc(e['loc']) or '(top level)'}: {_message(e)}"
            for e in err.errors(include_input=False, include_url=False)
        )
        raise ConfigError(f"{source}: {problems}") from None
    _redact.install()
    for value in secret_values(config):
        _redact.remember(value)
    return config


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a configuration file.

    Raises:
        ConfigError: The file is missing, is not YAML, or is invalid.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: no such file. Set {CONFIG_ENV_VAR} (or --config) to your configuration "
            "file; 'ws-artifacts config schema' prints what it may contain."
        ) from None
    except OSError as err:
        raise ConfigError(f"{file}: cannot read it ({err.strerror}).") from None
    try:
        # The C loader when PyYAML has it: a 10 000-workspace file loads ~3x faster.
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None)
        raise ConfigError(
            f"{file}: not valid YAML{where}" + (f": {problem}." if problem else ".")
        ) from None
    config = parse_config(data, source=str(file))
    _logger.info(
        "loaded %s: %d workspace route(s), unknown_workspaces=%s",
        file,
        len(config.workspaces),
        config.unknown_workspaces,
    )
    return config


def _expand(node: Any, env: dict[str, str], source: str, loc: tuple[str, ...]) -> Any:
    if isinstance(node, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{source}: {_loc(loc)}: environment variable {name} is not set; set it or "
                f"write ${{{name}:-default}}."
            )

        return _VAR.sub(replace, node)
    if isinstance(node, dict):
        return {k: _expand(v, env, source, (*loc, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, env, source, (*loc, str(i))) for i, v in enumerate(node)]
    return node


def _loc(loc: tuple[Any, ...]) -> str:
    # pydantic adds "[key]" after a mapping key whose own validation failed.
    return ".".join(str(part) for part in loc if part != "[key]")


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (see 'ws-artifacts config schema')"
    msg = str(error["msg"])
    return msg.removeprefix("Value error, ")
