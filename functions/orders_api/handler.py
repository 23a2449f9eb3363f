"""Customer order routes: list, read, cancel, reorder; the caller's notifications and their preferences; cart holds."""

from shop.http.app import create_app, lambda_entry


def build_app():
    """The resolver and its routes, built by the first request (or before a SnapStart snapshot), not at import."""
    from shop.http.routes import after_sales, carts, me, orders

    return create_app(orders.router, after_sales.router, me.router, carts.router)


lambda_handler = lambda_entry(build_app)
