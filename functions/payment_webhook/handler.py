"""POST /webhooks/{provider}. Until the payments module lands, every provider answers 501."""

from shop.http.app import create_app, lambda_entry
from shop.http.problems import problem

app = create_app()


@app.post("/webhooks/<provider>", include_in_schema=False)
def webhook(provider: str):
    return problem(501, "not-implemented", "Not implemented", "payment webhooks are not available yet")


lambda_handler = lambda_entry(app, json_only=False)
