"""Alerts on the diff: rules evaluated the moment a round commits, delivered through the alert outbox.

J1's own alert rules run on a schedule (15 minutes at best); syncd already knows each change, so it
alerts within seconds and also prints matching J1 rules for the J1 side (see docs/alerts.md).
"""

from syncd.alerts.cli import alerts_test
from syncd.alerts.delivery import AlertDispatcher, AlertStore, alerts_to_rows, log_alert
from syncd.alerts.formats import slack_payload, teams_payload
from syncd.alerts.j1 import j1_rule_set, j1_rules
from syncd.alerts.loader import RuleError
from syncd.alerts.rules import Rule, RuleSet, alert_id_for, default_rules_path
from syncd.alerts.targets import (
    ALERT_ID_HEADER,
    TARGET_KINDS,
    AlertTarget,
    CommandTarget,
    DeliveryOutcome,
    HttpTarget,
    SlackTarget,
    TargetError,
    TeamsTarget,
    WebhookTarget,
    targets_from_config,
)
from syncd.alerts.types import Alert, ChangeLike, Lookup, SampleChange

__all__ = [
    "ALERT_ID_HEADER",
    "TARGET_KINDS",
    "Alert",
    "AlertDispatcher",
    "AlertStore",
    "AlertTarget",
    "ChangeLike",
    "CommandTarget",
    "DeliveryOutcome",
    "HttpTarget",
    "Lookup",
    "Rule",
    "RuleError",
    "RuleSet",
    "SampleChange",
    "SlackTarget",
    "TargetError",
    "TeamsTarget",
    "WebhookTarget",
    "alert_id_for",
    "alerts_test",
    "alerts_to_rows",
    "default_rules_path",
    "j1_rule_set",
    "j1_rules",
    "log_alert",
    "slack_payload",
    "targets_from_config",
    "teams_payload",
]
