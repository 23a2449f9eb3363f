"""Operator routes (group admin)."""

from shop.http.app import create_app, lambda_entry
from shop.http.routes import admin

app = create_app(admin.router)
lambda_handler = lambda_entry(app)
