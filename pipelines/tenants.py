"""The installation's organisations and the vendor tenants that belong to them.

They come from one TOML file: `POSTURE_CONFIG` names it, else `posture.toml` in the working
directory is used when it exists. Each organisation lists any number of Keeper enterprises,
Cloud One accounts and 1Password accounts, each with its own base URL and the name of the
environment variable (`token_env`) or dlt secret (`token_secret`) holding its token; a token
itself never goes in the file. Without a file there is one tenant per source, configured by the
`SOURCES__<SOURCE>__…` settings as before, in the default organisation.

Each configured tenant loads through a dlt pipeline of its own (`<dataset>__<tenant>`) into its
source's dataset, so its incremental state (cursors, high-water marks, backlog) is its own, and
every row it loads carries its name as `tenant`. The single tenant of the settings keeps the
source's pipeline (`<dataset>`), so an existing warehouse keeps its state.

Cheap to import (the CLI reads it): dlt is imported only to read a dlt secret.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.registry import SOURCES

CONFIG_ENV = "POSTURE_CONFIG"
DEFAULT_CONFIG_FILE = "posture.toml"
DEFAULT_ORGANISATION = "default"  # the organisation of tenants the file does not name

# Per source, the settings a tenant may give besides its name and token: {setting: required}.
SOURCE_SETTINGS: dict[str, dict[str, bool]] = {
    "keeper": {"base_url": True},
    "trend": {"base_url": False, "region": False},
    "onepassword": {"base_url": True, "start_time": False},
}
TOKEN_KEYS = ("token_env", "token_secret")
# Names of organisations and tenants: they become parts of dlt pipeline names and folder names.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class ConfigError(ValueError):
    """The configuration file is unreadable or says something that cannot be loaded; the
    message names the file, the key and what is wrong."""


@dataclass(frozen=True)
class Tenant:
    """One vendor tenant to load: from the configuration file, or (name None) the single
    tenant of a source's `SOURCES__…` settings."""

    source: str  # short name in `pipelines.registry.SOURCES`
    name: str | None = None
    organisation: str = DEFAULT_ORGANISATION
    settings: tuple[tuple[str, str], ...] = ()  # base_url, region, start_time as given
    token_env: str | None = None
    token_secret: str | None = None

    @property
    def label(self) -> str:
        """How messages name it: `keeper acme-eu`, or `keeper` for the settings' tenant."""
        return self.source if self.name is None else f"{self.source} {self.name}"

    @property
    def pipeline_name(self) -> str:
        """Its dlt pipeline, which holds its incremental state."""
        dataset = SOURCES[self.source].pipeline_name
        return dataset if self.name is None else f"{dataset}__{self.name}"

    def source_args(self) -> dict[str, Any]:
        """The arguments of its dlt source (none for the settings' tenant: dlt reads them)."""
        if self.name is None:
            return {}
        return {
            **dict(self.settings),
            "tenant": self.name,
            SOURCES[self.source].token_arg: self._token(),
        }

    def _token(self) -> str:
        if self.token_env is not None:
            value = os.environ.get(self.token_env, "")
            where = f"environment variable {self.token_env}"
        else:
            import dlt

            value = dlt.secrets.get(self.token_secret) or ""
            where = f"dlt secret {self.token_secret}"
        if not value:
            raise ValueError(f"{self.label}: its token is missing: set the {where}")
        return str(value)


def config_path() -> Path | None:
    """The configuration file: `POSTURE_CONFIG`, else `./posture.toml` when it exists."""
    named = os.environ.get(CONFIG_ENV, "").strip()
    if named:
        return Path(named)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def configured_tenants() -> list[Tenant] | None:
    """Every tenant the configuration file names (None without a file); ConfigError when the
    file cannot be read or is wrong."""
    path = config_path()
    if path is None:
        return None
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _parse(document, path)


def tenants_to_load(sources: list[str]) -> list[Tenant]:
    """The tenants of `sources` (short names) to load: the file's, or without one the single
    tenant of each source's settings."""
    tenants = configured_tenants()
    if tenants is None:
        return [Tenant(source) for source in sources]
    return [tenant for tenant in tenants if tenant.source in sources]


def tenant_to_act_on(source: str, name: str | None) -> Tenant:
    """The one tenant of `source` a command acts on (e.g. setting a Keeper benchmark): the one
    named, or the only one there is; without a configuration file, the settings' tenant."""
    tenants = configured_tenants()
    if tenants is None:
        if name is not None:
            raise ConfigError(
                f"--tenant {name}: tenants are named in a configuration file ({CONFIG_ENV} or "
                f"{DEFAULT_CONFIG_FILE}); without one, the SOURCES__ settings name the only tenant"
            )
        return Tenant(source)
    candidates = [tenant for tenant in tenants if tenant.source == source]
    names = ", ".join(str(tenant.name) for tenant in candidates) or "none"
    if name is not None:
        for tenant in candidates:
            if tenant.name == name:
                return tenant
        raise ConfigError(f"--tenant {name}: no {source} tenant of that name (configured: {names})")
    if len(candidates) != 1:
        raise ConfigError(
            f"{len(candidates)} {source} tenants are configured ({names}): name one with --tenant"
        )
    return candidates[0]


def _parse(document: dict[str, Any], path: Path) -> list[Tenant]:
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key}: {problem}")

    for key in document:
        if key != "organisations":
            raise fail(key, "unknown key (the file has one table, [organisations.<name>])")
    organisations = document.get("organisations")
    if not isinstance(organisations, dict) or not organisations:
        raise fail("organisations", "missing: name at least one [organisations.<name>]")
    tenants: list[Tenant] = []
    seen: dict[tuple[str, str | None], str] = {}
    for organisation, vendors in organisations.items():
        org_key = f"organisations.{organisation}"
        if not NAME_PATTERN.fullmatch(organisation):
            raise fail(org_key, "an organisation's name is letters, digits, '.', '_' or '-'")
        if not isinstance(vendors, dict):
            raise fail(org_key, "must be a table of vendor tenants")
        for source, entries in vendors.items():
            source_key = f"{org_key}.{source}"
            if source not in SOURCE_SETTINGS:
                raise fail(source_key, f"unknown vendor (known: {', '.join(SOURCE_SETTINGS)})")
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                raise fail(source_key, f"must be tables: [[{source_key}]]")
            for number, entry in enumerate(entries, start=1):
                entry_key = f"{source_key}[{number}]"
                tenant = _tenant(entry, organisation, source, entry_key, fail)
                if (source, tenant.name) in seen:
                    raise fail(
                        f"{entry_key}.tenant",
                        f"{source} tenant {tenant.name!r} is named twice (also in "
                        f"{seen[source, tenant.name]})",
                    )
                seen[source, tenant.name] = entry_key
                tenants.append(tenant)
    return tenants


def _tenant(entry: dict[str, Any], organisation: str, source: str, key: str, fail: Any) -> Tenant:
    settings = SOURCE_SETTINGS[source]
    allowed = {"tenant", *TOKEN_KEYS, *settings}
    for name, value in entry.items():
        if name not in allowed:
            if any(word in name.lower() for word in ("token", "key", "secret", "password")):
                raise fail(
                    f"{key}.{name}",
                    "tokens never go in this file: name the environment variable that holds "
                    "it (token_env) or the dlt secret (token_secret)",
                )
            raise fail(f"{key}.{name}", f"unknown key (known: {', '.join(sorted(allowed))})")
        if not isinstance(value, str) or not value.strip():
            raise fail(f"{key}.{name}", "must be a non-empty string")
    name = entry.get("tenant")
    if name is None:
        raise fail(f"{key}.tenant", "missing: every tenant needs a name")
    if not NAME_PATTERN.fullmatch(name):
        raise fail(f"{key}.tenant", f"{name!r}: a tenant's name is letters, digits, '.', '_', '-'")
    tokens = [k for k in TOKEN_KEYS if k in entry]
    if len(tokens) != 1:
        raise fail(
            f"{key}.token_env",
            "give exactly one of token_env (an environment variable) and token_secret (a dlt "
            "secret) to say where the token is",
        )
    for setting, required in settings.items():
        if required and setting not in entry:
            raise fail(f"{key}.{setting}", "missing")
    return Tenant(
        source=source,
        name=name,
        organisation=organisation,
        settings=tuple((s, entry[s]) for s in settings if s in entry),
        token_env=entry.get("token_env"),
        token_secret=entry.get("token_secret"),
    )
