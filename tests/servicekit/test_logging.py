"""Logs are JSON lines carrying the correlation id of the work in hand."""

import json
import logging

from servicekit.logging import JsonFormatter, correlation_id


def test_log_lines_are_json_with_correlation_id_and_extras() -> None:
    formatter = JsonFormatter("intake")
    record = logging.LogRecord(
        "intake.api", logging.WARNING, __file__, 1, "filed %s", ("KLX-1",), None
    )
    record.ticket = "KLX-1"
    token = correlation_id.set("c0ffee")
    try:
        line = json.loads(formatter.format(record))
    finally:
        correlation_id.reset(token)
    assert line["msg"] == "filed KLX-1"
    assert line["level"] == "WARNING"
    assert line["service"] == "intake"
    assert line["correlation_id"] == "c0ffee"
    assert line["ticket"] == "KLX-1"

    untagged = json.loads(formatter.format(record))
    assert "correlation_id" not in untagged
