"""The HTTP routes, one small router per resource. Each route parses, calls a use case (or a
view inside a unit of work) and returns the answer its response schema (``api.answers``) describes."""

from api.routes import admin, calendars, capacity, catalogue, jobs, patients, plans, proposals, records, service

ROUTERS = (
    service.router,
    catalogue.router,
    plans.router,
    patients.router,
    calendars.router,
    proposals.router,
    records.router,
    capacity.router,
    jobs.router,
    admin.router,
)
