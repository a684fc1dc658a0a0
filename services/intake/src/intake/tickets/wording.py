"""What a reporter is told happens next, by severity and status."""

from contracts.common import Severity


def next_steps(severity: str, product_name: str, promise_min: int, status: str = "new") -> str:
    """What happens next, in words for the reporter, for a ticket in `status`."""
    if status == "closed":
        return "This ticket is closed. If the problem comes back, file a new ticket."
    if status == "resolved":
        return (
            f"The outage of {product_name} has been marked resolved. If it is still down for "
            "you, file a new CRITICAL ticket so the on-call engineer is paged again."
        )
    if severity != Severity.CRITICAL:
        return (
            f"Your {severity} ticket for {product_name} is in the support queue and will be "
            "answered by email. If the service is down for you, file it as CRITICAL so the "
            "on-call engineer is paged."
        )
    escalation = (
        f"If the status page shows no update within {promise_min} minutes of this report, "
        "call that number; we also escalate automatically."
    )
    if status == "acknowledged":
        return (
            f"The on-call engineer for {product_name} is working on it. Updates go to the "
            "status page linked in your confirmation email, which also has an after-hours "
            f"phone number. {escalation}"
        )
    if status == "oncall_notified":
        return (
            f"The on-call engineer for {product_name} has been paged. You will get (or have "
            "had) an email confirming it, with the status-page links and an after-hours "
            f"phone number. {escalation}"
        )
    return (
        f"This CRITICAL ticket is paging the on-call engineer for {product_name} now. "
        "As soon as they have been notified you will get an email confirming it, with "
        f"the status-page links for {product_name} and an after-hours phone number. {escalation}"
    )
