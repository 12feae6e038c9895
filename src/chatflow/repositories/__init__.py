"""All SQL lives here: one module per table, plain functions taking a session."""
