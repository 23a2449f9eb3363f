"""Public catalog reads and the OpenAPI document."""

from shop.http.app import create_app, lambda_entry


def build_app():
    """The resolver and its routes, built by the first request (or before a SnapStart snapshot), not at import."""
    from aws_lambda_powertools.event_handler import Response, content_types

    from shop.http.routes import catalog

    app = create_app(catalog.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_document():
        # Imported here: building the document loads every router and the payment providers, which the
        # hot public read (GET /skus/{sku}) never needs at cold start.
        from shop.http.openapi import openapi_json

        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())

    return app


lambda_handler = lambda_entry(build_app)
