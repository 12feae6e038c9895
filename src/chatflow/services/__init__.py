"""Business logic: keyword-only functions over the runtime; no HTTP, no SQL."""
