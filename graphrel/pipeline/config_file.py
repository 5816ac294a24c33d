"""``graphrel pipeline`` config files and options: top-level keys of a YAML config (``seed:``,
``data:``, ...) nested under ``pipeline`` for jsonargparse, and every key checked against the
:class:`~graphrel.pipeline.config.PipelineConfig` tree first, so a typo is one clear line naming
the key and the closest known one."""

from __future__ import annotations

import os

from graphrel.errors import GraphrelInputError, did_you_mean


def _config_key_tree(config) -> dict:
    """{key: subtree} of a pipeline config; {} = a leaf (a value or a free-form mapping)."""
    import dataclasses

    return {f.name: _config_key_tree(getattr(config, f.name)) if dataclasses.is_dataclass(getattr(config, f.name))
            else {} for f in dataclasses.fields(config)}


def _closest(key: str, known: dict) -> str | None:
    close = did_you_mean(key, known)
    return close[0] if close else None


def _check_config_mapping(mapping: dict, known: dict, where: list[str], path: str) -> None:
    """Raise GraphrelInputError on the first key of a config file that is not in ``known``."""
    for key, value in mapping.items():
        key = str(key)
        if key not in known:
            guess = _closest(key, known)
            hint = f" (did you mean {'.'.join(where + [guess])!r}?)" if guess else ""
            raise GraphrelInputError(
                f"unknown config key {'.'.join(where + [key])!r}{hint}", path=path,
                fix=f"keys allowed there: {', '.join(sorted(known))} (graphrel pipeline --help)")
        if known[key] and isinstance(value, dict):
            _check_config_mapping(value, known[key], where + [key], path)


def _check_dotted_option(option: str, pipeline_keys: dict) -> None:
    """Raise GraphrelInputError for a dotted option (``--student.order``) naming no config key."""
    parts = option.split(".")
    start = 1 if parts[0] == "pipeline" else 0
    known = pipeline_keys
    for k in range(start, len(parts)):
        if parts[k] not in known:
            guess = _closest(parts[k], known)
            hint = f" (did you mean --{'.'.join(parts[:k] + [guess] + parts[k + 1:])}?)" if guess else ""
            raise GraphrelInputError(f"unknown option --{option}{hint}",
                                     fix="see graphrel pipeline --help for every key")
        known = known[parts[k]]
        if not known:  # a leaf or a free-form mapping (data.options, teacher.backbone_config)
            break


def _nested_config_file(path: str, top_keys: dict) -> str:
    """Check the YAML config ``path`` and write it, top-level keys nested under ``pipeline``,
    to a temporary file; returns the temporary file's path (the caller deletes it)."""
    import tempfile

    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            content = yaml.safe_load(handle) or {}
    except OSError as error:
        raise GraphrelInputError(f"cannot read config ({error.strerror})", path=path,
                                 fix="pass an existing YAML file") from None
    except yaml.YAMLError as error:
        raise GraphrelInputError(f"not valid YAML ({error.__class__.__name__})", path=path,
                                 fix="correct the YAML syntax") from None
    if not isinstance(content, dict):
        raise GraphrelInputError("config must be a mapping of keys", path=path, fix="see configs/home_depot.yaml")
    _check_config_mapping(content, top_keys, [], path)
    nested = {k: v for k, v in content.items() if k in ("run_dir", "no_progress", "pipeline")}
    rest = {k: v for k, v in content.items() if k not in nested}
    if rest:
        nested.setdefault("pipeline", {}).update(rest)
    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump(nested, handle)
    handle.close()
    return handle.name


def nest_pipeline_keys(argv: list[str]) -> tuple[list[str], list[str]]:
    """Let configs write ``seed:``, ``data:`` ... at top level: nest them under ``pipeline``.

    Config keys (in ``--config FILE`` or ``--config=FILE`` files and dotted options such as
    ``--student.order``) are checked first: an unknown key (``studnet:``) is a one-line error
    naming it and the closest known key.

    Returns the rewritten arguments and the temporary config files to delete after parsing.

    Raises:
        GraphrelInputError: unreadable or invalid YAML, or an unknown config key.
    """
    from graphrel.pipeline.config import PipelineConfig

    pipeline_keys = _config_key_tree(PipelineConfig())
    top_keys = {**pipeline_keys, "pipeline": pipeline_keys, "run_dir": {}, "no_progress": {}}
    out, temporary, i = [], [], 0
    try:
        while i < len(argv):
            if argv[i].startswith("--config="):  # --config=FILE: the same as --config FILE
                argv = [*argv[:i], "--config", argv[i][len("--config="):], *argv[i + 1:]]
            if argv[i] == "--config" and i + 1 < len(argv):
                temporary.append(_nested_config_file(argv[i + 1], top_keys))
                out += ["--config", temporary[-1]]
                i += 2
                continue
            option = argv[i].split("=")[0][2:] if argv[i].startswith("--") else ""
            if "." in option or option in pipeline_keys:
                _check_dotted_option(option, pipeline_keys)
            out.append("--pipeline." + argv[i][2:] if option.split(".")[0] in pipeline_keys else argv[i])
            i += 1
    except GraphrelInputError:
        for path in temporary:
            os.remove(path)
        raise
    return out, temporary


def run_config(run_dir):
    """The :class:`~graphrel.pipeline.config.PipelineConfig` a run was made with, from the
    ``config.yaml`` that ``graphrel pipeline`` saves in its run directory (keys it lacks keep
    their defaults; YAML lists become tuples where the default is a tuple).

    Raises:
        GraphrelInputError: no readable ``config.yaml`` with a ``pipeline`` mapping.
    """
    from pathlib import Path

    import yaml

    from graphrel.pipeline.config import PipelineConfig

    path = Path(run_dir) / "config.yaml"
    try:
        saved = (yaml.safe_load(path.read_text()) or {}).get("pipeline")
    except (OSError, yaml.YAMLError, AttributeError):
        saved = None
    if not isinstance(saved, dict):
        raise GraphrelInputError("no pipeline config", path=path, fix="pass a run directory of graphrel pipeline")
    return _with_values(PipelineConfig(), saved)


def _with_values(default, values: dict):
    import dataclasses

    changes = {}
    for key, value in values.items():
        current = getattr(default, key)
        if dataclasses.is_dataclass(current):
            value = _with_values(current, value or {})
        elif isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        changes[key] = value
    return dataclasses.replace(default, **changes)
