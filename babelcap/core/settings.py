"""Command settings declared once as pydantic-settings models: each field's description is its
``--help`` text, and each field can also be set as an environment variable (the model's
``env_prefix``, e.g. ``BABELCAP_CONCURRENCY``). Flags win over variables, which win over
defaults. Every ``babelcap`` command builds its flags with :func:`add_arguments`."""

from __future__ import annotations

import argparse
import types
import typing
from typing import Annotated, Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from babelcap.core.errors import ConfigurationError

__all__ = [
    "POSITIONAL",
    "REPEATABLE",
    "add_arguments",
    "exclusive",
    "flag",
    "settings_from_args",
    "split_list",
]

#: ``json_schema_extra`` of a list field whose flag may be repeated (``--server A --server B``);
#: each value may also hold a comma-separated list.
REPEATABLE: dict[str, Any] = {"repeatable": True}
#: ``json_schema_extra`` of a field given as a positional argument (``babelcap translate TEXT``).
POSITIONAL: dict[str, Any] = {"positional": True}


def flag(name: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field whose flag is not its name (``source`` as ``--from``)."""
    return {"flag": name}


def exclusive(group: str) -> dict[str, Any]:
    """``json_schema_extra`` of the fields of which at most one may be given (the same
    ``group``): ``--server URL`` or ``--model DIR``."""
    return {"exclusive": group}


SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def split_list(value: Any) -> Any:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``; other values unchanged (a validator helper)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _scalar(annotation: Any) -> Any:
    """The element type of ``X | None``, without ``Annotated``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _extra(field: Any, key: str) -> Any:
    extra = field.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def add_arguments(
    parser: argparse.ArgumentParser,
    model: type[BaseSettings],
    skip: frozenset[str] = frozenset(),
) -> None:
    """One ``--flag`` per field of ``model`` (or a positional argument for fields marked
    :data:`POSITIONAL`), help from its description; unset flags stay None so environment
    variables and defaults apply."""
    prefix = model.model_config.get("env_prefix", "")
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        option = _extra(field, "flag") or "--" + name.replace("_", "-")
        group = _extra(field, "exclusive")
        target: Any = parser
        if group:
            if group not in groups:
                groups[group] = parser.add_mutually_exclusive_group()
            target = groups[group]
        default = field.default
        shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
        if "SecretStr" in str(field.annotation):
            shown = f"${prefix}{name.upper()}, else none"
        help_text = field.description or ""
        if shown not in (None, "", False, [], ()) and not field.is_required():
            help_text += f" (default: {shown})"
        annotation = _scalar(field.annotation)
        origin = typing.get_origin(annotation)
        if _extra(field, "positional"):
            nargs = "*" if origin is list else None
            target.add_argument(name, nargs=nargs, help=help_text)
        elif annotation is bool:
            target.add_argument(
                option, dest=name, action="store_true", default=None, help=field.description
            )
        elif origin is typing.Literal:
            target.add_argument(
                option, dest=name, choices=list(typing.get_args(annotation)), default=None,
                required=field.is_required(), help=help_text,
            )  # fmt: skip
        elif _extra(field, "repeatable") and origin is list:
            item = typing.get_args(annotation)[0] if typing.get_args(annotation) else str
            choices = (
                list(typing.get_args(item)) if typing.get_origin(item) is typing.Literal else None
            )
            target.add_argument(
                option, dest=name, action="append", choices=choices, default=None, help=help_text
            )
        elif origin is list:
            target.add_argument(
                option, dest=name, default=None, metavar="A,B", required=field.is_required(),
                help=help_text,
            )  # fmt: skip
        else:
            kind = annotation if annotation in (int, float) else str
            target.add_argument(
                option, dest=name, type=kind, default=None, required=field.is_required(),
                help=help_text,
            )  # fmt: skip


def settings_from_args(args: argparse.Namespace, model: type[SettingsT]) -> SettingsT:
    """Settings from parsed flags; flags win over environment variables, which win over
    defaults. Invalid values raise :class:`ConfigurationError` naming the flag."""
    # An empty positional list is "none given": the field's default applies.
    given = {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) not in (None, [])
    }
    for name, field in model.model_fields.items():
        if _extra(field, "repeatable") and isinstance(given.get(name), list):
            given[name] = [item for value in given[name] for item in split_list(value)]
    try:
        return model(**given)
    except ValidationError as error:
        problems = "; ".join(
            f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from error
