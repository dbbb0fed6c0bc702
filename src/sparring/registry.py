"""Components registered by name, built from validated arguments, recorded with every result.

A component class declares a pydantic ``Config`` (``extra="forbid"``) and takes
it in its constructor. ``Registry.create`` validates user arguments against it,
so a typo in a TOML key is reported with its path, and ``ComponentSpec`` keeps
the name and arguments so a report can say exactly what produced a result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from sparring.errors import ConfigError

T = TypeVar("T")

CONFIG_DIR = "config_dir"  # validation context key: the folder relative paths in a config file resolve against


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """A relative path in a config file means relative to that file, not to where the command runs."""
    base = (info.context or {}).get(CONFIG_DIR)
    path = Path(value).expanduser()
    return str(path if base is None or path.is_absolute() else Path(base) / path)


ConfigPath = Annotated[str, AfterValidator(_resolve_path)]
"""A component argument that is a file or folder: declare it with this type so configs resolve it."""


@dataclass(frozen=True)
class ComponentSpec:
    """What built a component: its kind, registered name and validated arguments."""

    kind: str
    name: str
    args: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "args": self.args}


def format_validation_error(error: ValidationError, where: str) -> str:
    lines = []
    for item in error.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"]).lstrip(".")
        key = f"{where}.{path}" if where and path else (where or path or "(top level)")
        if item["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)


class Registry(Generic[T]):
    """Name -> component class for one kind (models, interventions, attacks, scorers)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorate(cls: type[T]) -> type[T]:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if not isinstance(getattr(cls, "Config", None), type) or not issubclass(cls.Config, BaseModel):  # type: ignore[attr-defined]
                raise TypeError(f"{cls.__name__} must define a pydantic Config")
            self._classes[name] = cls
            return cls

        return decorate

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str, where: str = "") -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(self.names())
            prefix = f"{where}: " if where else ""
            raise ConfigError(f"{prefix}unknown {self.kind} {name!r}; expected one of: {known}") from None

    def validate(self, name: str, args: Mapping[str, Any], where: str = "",
                 context: Mapping[str, Any] | None = None) -> BaseModel:
        config_class: type[BaseModel] = self.get(name, where).Config  # type: ignore[attr-defined]  # checked by register()
        try:
            return config_class.model_validate(dict(args), context=dict(context or {}))
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, where)) from None

    def create(self, name: str, args: Mapping[str, Any] | None = None, where: str = "", **deps: Any) -> T:
        """Build a component; ``deps`` are live objects (a model, a scorer) not recorded as arguments."""
        config = self.validate(name, args or {}, where)
        try:
            instance = self._classes[name](config, **deps)  # type: ignore[call-arg]
        except ConfigError as error:  # a constructor's "path: ..." gets the config key: "models[0].path: ..."
            raise ConfigError(f"{where}.{error}" if where and not str(error).startswith(where) else str(error)) from None
        instance.spec = ComponentSpec(self.kind, name, config.model_dump(mode="json"))  # type: ignore[attr-defined]
        return instance


def validate_nested(registry: Registry[Any], key: str, spec: Mapping[str, Any],
                    context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Check ``{key: name, **args}`` against the named component's Config.

    Raised as a ValidationError so pydantic prefixes the enclosing path and a
    bad argument is reported as e.g. ``scorer.model.base_url``.
    """
    name = spec.get(key)
    if not isinstance(name, str):
        raise _error((key,), f"needs a {registry.kind} name (a string)", name)
    try:
        cls = registry.get(name)
    except ConfigError as error:
        raise _error((key,), str(error), name) from None
    args = {k: v for k, v in spec.items() if k != key}
    config = cls.Config.model_validate(args, context=dict(context or {}))
    return {key: name, **config.model_dump(mode="json")}


def _error(loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    kind = PydanticCustomError("component", "{message}", {"message": message})
    return ValidationError.from_exception_data("component", [{"type": kind, "loc": loc, "input": value}])
