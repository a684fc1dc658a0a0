"""The Statuspage public API v2 shapes, field by field, as Atlassian documents them."""

import re
from typing import Any

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
COMPONENT_STATUSES = {
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
MAINTENANCE_STATUSES = {"scheduled", "in_progress", "verifying", "completed"}
IMPACTS = {"none", "minor", "major", "critical"}
INDICATORS = {
    "none": "All Systems Operational",
    "minor": "Minor Service Outage",
    "major": "Partial System Outage",
    "critical": "Major Service Outage",
    "maintenance": "Service Under Maintenance",
}


def _time(value: Any, *, nullable: bool = False) -> None:
    if nullable and value is None:
        return
    assert isinstance(value, str), value
    assert TIMESTAMP.match(value), value


def _keys(obj: dict[str, Any], keys: set[str]) -> None:
    assert set(obj) == keys, f"{sorted(set(obj) ^ keys)} differ in {obj}"


def check_page(page: dict[str, Any]) -> None:
    """``page``: id, name, url, time_zone, updated_at."""
    _keys(page, {"id", "name", "url", "time_zone", "updated_at"})
    for key in ("id", "name", "url", "time_zone"):
        assert isinstance(page[key], str)
        assert page[key]
    _time(page["updated_at"])


def check_status(status: dict[str, Any]) -> None:
    """``status``: indicator and its description."""
    _keys(status, {"indicator", "description"})
    assert INDICATORS[status["indicator"]] == status["description"]


COMPONENT_KEYS = {
    "id",
    "name",
    "status",
    "created_at",
    "updated_at",
    "position",
    "description",
    "showcase",
    "start_date",
    "group_id",
    "page_id",
    "group",
    "only_show_if_degraded",
}


def check_component(c: dict[str, Any]) -> None:
    """A component, or a group (``group: true`` with the ids of its ``components``)."""
    _keys(c, COMPONENT_KEYS | ({"components"} if c.get("group") else set()))
    assert isinstance(c["id"], str)
    assert isinstance(c["name"], str)
    assert c["status"] in COMPONENT_STATUSES
    _time(c["created_at"])
    _time(c["updated_at"])
    assert isinstance(c["position"], int)
    assert c["description"] is None or isinstance(c["description"], str)
    assert isinstance(c["showcase"], bool)
    assert c["start_date"] is None or re.match(r"^\d{4}-\d\d-\d\d$", c["start_date"])
    assert c["group_id"] is None or isinstance(c["group_id"], str)
    assert isinstance(c["page_id"], str)
    assert isinstance(c["group"], bool)
    assert isinstance(c["only_show_if_degraded"], bool)
    if c["group"]:
        assert all(isinstance(i, str) for i in c["components"])


UPDATE_KEYS = {
    "id",
    "status",
    "body",
    "incident_id",
    "created_at",
    "updated_at",
    "display_at",
    "affected_components",
    "deliver_notifications",
    "custom_tweet",
    "tweet_id",
}


def check_incident(i: dict[str, Any], *, maintenance: bool = False) -> None:
    """An incident (or a scheduled maintenance, with its window) and its updates."""
    keys = {
        "id",
        "name",
        "status",
        "created_at",
        "updated_at",
        "monitoring_at",
        "resolved_at",
        "impact",
        "shortlink",
        "started_at",
        "page_id",
        "incident_updates",
        "components",
    }
    _keys(i, keys | ({"scheduled_for", "scheduled_until"} if maintenance else set()))
    assert i["status"] in (MAINTENANCE_STATUSES if maintenance else INCIDENT_STATUSES)
    assert i["impact"] in (IMPACTS | {"maintenance"} if maintenance else IMPACTS)
    for key in ("created_at", "updated_at", "started_at"):
        _time(i[key])
    for key in ("monitoring_at", "resolved_at"):
        _time(i[key], nullable=True)
    if maintenance:
        _time(i["scheduled_for"])
        _time(i["scheduled_until"])
    assert isinstance(i["shortlink"], str)
    assert i["shortlink"].startswith("http")
    assert isinstance(i["page_id"], str)
    for c in i["components"]:
        check_component(c)
    for u in i["incident_updates"]:
        _keys(u, UPDATE_KEYS)
        assert u["incident_id"] == i["id"]
        assert isinstance(u["body"], str)
        assert u["body"]
        assert u["status"] in (MAINTENANCE_STATUSES if maintenance else INCIDENT_STATUSES)
        for key in ("created_at", "updated_at", "display_at"):
            _time(u[key])
        assert isinstance(u["deliver_notifications"], bool)
        assert u["custom_tweet"] is None
        assert u["tweet_id"] is None
        if u["affected_components"] is not None:
            for a in u["affected_components"]:
                _keys(a, {"code", "name", "old_status", "new_status"})
                assert a["old_status"] in COMPONENT_STATUSES
                assert a["new_status"] in COMPONENT_STATUSES
