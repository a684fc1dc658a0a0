"""The /v1 REST API of intake: thin routes that parse, call one use case, commit, respond."""

from intake.api.admin import router as admin_router
from intake.api.tickets import router as tickets_router

ROUTERS = (tickets_router, admin_router)

__all__ = ["ROUTERS"]
