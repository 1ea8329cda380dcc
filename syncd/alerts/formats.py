"""The bodies Slack and Teams receive, rendered from an alert's generic payload at send time.

The outbox keeps the generic form (``Alert.to_dict()``), so a format can change without touching
stored rows. Alert texts carry names an attacker can choose (a guest's or a device's display
name): each format gets them in a form its renderer shows as text, never as a link, mention or
markup.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

_SEVERITY_COLOR = {
    "info": "808080",
    "low": "2E86C1",
    "medium": "F1C40F",
    "high": "E67E22",
    "critical": "C0392B",
}

_TEAMS_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def _slack_escape(text: str) -> str:
    """Slack's three control characters (`&`, `<`, `>`): no link, mention or channel ping can form."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(text: str) -> dict[str, Any]:
    """A mrkdwn text object that Slack shows verbatim: no auto-linked URLs or names."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _teams_markdown_escape(text: str) -> str:
    """For MessageCard fields, which Teams renders as Markdown (and some HTML): every Markdown
    control character backslash-escaped, `&`, `<`, `>` as entities; a `[x](url)` stays text."""
    return _TEAMS_MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def _text_run(text: str, **style: Any) -> dict[str, Any]:
    """Adaptive Card TextRun: its text is never read as Markdown (TextBlock and FactSet are)."""
    return {"type": "TextRun", "text": text, **style}


def _facts(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    change = payload.get("change") or {}
    facts = [
        ("Severity", str(payload.get("severity", "")).upper()),
        ("Rule", str(payload.get("rule_id", ""))),
        ("Change", f"{change.get('op', '')} {change.get('type', '')}".strip()),
        ("Key", str(change.get("key", ""))),
    ]
    changes = change.get("changes") or {}
    if isinstance(changes, Mapping) and changes:
        shown = [
            f"{k}: {json.dumps(v.get('old'))} → {json.dumps(v.get('new'))}"
            for k, v in list(changes.items())[:10]
            if isinstance(v, Mapping)
        ]
        facts.append(("Changed", "; ".join(shown)))
    facts.append(("Alert id", str(payload.get("alert_id", ""))))
    return facts


def slack_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Slack incoming-webhook body: `text` (fallback/notification) plus Block Kit `blocks`."""
    sev = str(payload.get("severity", "")).upper()
    message = _slack_escape(str(payload.get("message", "")))
    facts = _facts(payload)
    return {
        "text": f"[{sev}] {message}",
        "mrkdwn": False,
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": f"syncd alert: {sev}"[:150]}},
            {"type": "section", "text": _slack_text(message[:2900] or " ")},
            {
                "type": "section",
                "fields": [
                    _slack_text(f"*{name}*\n{_slack_escape(value)[:1900] or '-'}")
                    for name, value in facts[:10]
                    if name != "Alert id"
                ],
            },
            {
                "type": "context",
                "elements": [_slack_text(f"alert id `{_slack_escape(str(payload.get('alert_id', '')))}`")],
            },
        ],
    }


def teams_payload(payload: Mapping[str, Any], fmt: str = "adaptive") -> dict[str, Any]:
    """Teams incoming webhook: an Adaptive Card message (Workflows) or a legacy MessageCard."""
    sev = str(payload.get("severity", "")).lower()
    title = f"syncd alert: {sev.upper()}"
    message = str(payload.get("message", ""))
    facts = _facts(payload)
    if fmt == "messagecard":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": message[:200] or title,  # the notification preview: plain text
            "themeColor": _SEVERITY_COLOR.get(sev, "808080"),
            "title": _teams_markdown_escape(title),
            "text": _teams_markdown_escape(message),
            "sections": [
                {"facts": [{"name": n, "value": _teams_markdown_escape(v)} for n, v in facts]}
            ],
        }
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {
                            "type": "TextBlock",
                            "size": "Medium",
                            "weight": "Bolder",
                            "text": title,
                            "color": "Attention" if sev in ("high", "critical") else "Default",
                        },
                        {"type": "RichTextBlock", "inlines": [_text_run(message)]},
                        *(
                            {
                                "type": "RichTextBlock",
                                "spacing": "None",
                                "inlines": [_text_run(f"{name}: ", weight="Bolder"), _text_run(value)],
                            }
                            for name, value in facts
                        ),
                    ],
                },
            }
        ],
    }
