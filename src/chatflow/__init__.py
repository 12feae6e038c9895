"""chatflow: chat-driven spreadsheet workflows with live progress."""

__version__ = "0.1.0"
