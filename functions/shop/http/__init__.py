"""REST layer: routers per function, request schemas, problem+json errors, caller identity."""
