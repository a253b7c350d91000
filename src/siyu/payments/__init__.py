"""Payments: gateway adapters (sandbox, WeChat Pay v3), payments, refunds and notifications."""
