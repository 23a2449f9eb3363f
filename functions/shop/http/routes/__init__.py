"""One router per function; /openapi.json is generated from all of them."""
