"""HTTP and WebSocket endpoints: parse, call a service, shape the response."""
