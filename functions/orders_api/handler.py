"""Customer order routes: list, read, cancel, reorder."""

from shop.http.app import create_app, lambda_entry
from shop.http.routes import orders

app = create_app(orders.router)
lambda_handler = lambda_entry(app)
