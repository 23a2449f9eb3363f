"""Operator routes (group admin)."""

from shop.http.app import create_app, lambda_entry


def build_app():
    """The resolver and its routes, built by the first request (or before a SnapStart snapshot), not at import."""
    from shop.http.routes import admin, after_sales, presale, stock_ops, warehouses

    return create_app(admin.router, after_sales.admin_router, warehouses.router, presale.router, stock_ops.router)


lambda_handler = lambda_entry(build_app)
