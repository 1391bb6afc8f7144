"""Billing: the pure tariff engine, payments and refunds, and revenue reports."""
