"""Middlewares that guard the API: versioning (and later auth, rate limits, CORS)."""
