"""POST /orders: reserve stock and write the order in one transaction, then open the payment window."""

from shop.http.app import create_app, lambda_entry
from shop.http.routes import create_order

app = create_app(create_order.router)
lambda_handler = lambda_entry(app)
