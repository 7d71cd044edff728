"""Fleet configuration: one declarative TOML file for lines, meters, groups, read plans and
schedules, validated as a whole (see ``docs/configuration.md`` for the format).

This module is the public face of the configuration modules::

    config = load_config("fleet.toml")               # or parse_config(text, source=...)
    config.meter("m-0001").line                       # frozen dataclasses, file order
    config.schedule_meters("daily-billing")

Any problem raises :class:`ConfigValidationError` (a :class:`~metercom.errors.ConfigError`)
listing every problem with file, line and key. Versioned, atomic application to the store
lives in :mod:`metercom.service.config_store` (:class:`~.config_store.ConfigStore`), which
is kept apart so validating a file does not load the database layer.

Modules: :mod:`.config_model` (the dataclasses and diffs), :mod:`.config_validate` (reading
and validation), :mod:`.config_positions` (TOML key paths to line numbers),
:mod:`.secrets` (secret references) and :mod:`.cron` (cron expressions, intervals, durations).
"""

from __future__ import annotations

from metercom.service.config_model import (
    FORMAT_VERSION,
    ConfigDiff,
    DlmsAddress,
    FleetConfig,
    GroupConfig,
    Iec21Address,
    LineConfig,
    LineKind,
    MeterAddress,
    MeterConfig,
    ModbusAddress,
    ObjectRead,
    Protocol,
    QuirkValue,
    ReadPlan,
    RetentionPolicy,
    ScheduleConfig,
    SectionDiff,
    ServiceSettings,
    diff_configs,
)
from metercom.service.config_validate import (
    DLMS_AUTHENTICATION,
    DLMS_KEYS,
    DLMS_SECURITY,
    ConfigProblem,
    ConfigValidationError,
    load_config,
    parse_config,
    read_config_text,
)
from metercom.service.cron import CronExpr, CronTrigger, IntervalTrigger, Trigger, parse_duration
from metercom.service.secrets import Secret, SecretRef, parse_secret_ref

__all__ = [
    "DLMS_AUTHENTICATION",
    "DLMS_KEYS",
    "DLMS_SECURITY",
    "FORMAT_VERSION",
    "ConfigDiff",
    "ConfigProblem",
    "ConfigValidationError",
    "CronExpr",
    "CronTrigger",
    "DlmsAddress",
    "FleetConfig",
    "GroupConfig",
    "Iec21Address",
    "IntervalTrigger",
    "LineConfig",
    "LineKind",
    "MeterAddress",
    "MeterConfig",
    "ModbusAddress",
    "ObjectRead",
    "Protocol",
    "QuirkValue",
    "ReadPlan",
    "RetentionPolicy",
    "ScheduleConfig",
    "Secret",
    "SecretRef",
    "SectionDiff",
    "ServiceSettings",
    "Trigger",
    "diff_configs",
    "load_config",
    "parse_config",
    "parse_duration",
    "parse_secret_ref",
    "read_config_text",
]
