"""POST /orders: reserve stock and write the order in one transaction, then open the payment window."""

from shop.http.app import create_app, lambda_entry


def build_app():
    """The resolver and its routes, built by the first request (or before a SnapStart snapshot), not at import."""
    from shop.http.routes import create_order

    return create_app(create_order.router)


lambda_handler = lambda_entry(build_app)
