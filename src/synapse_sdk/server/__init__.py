"""The embedded platform: store (SQLite), REST server, demo project and dataset import."""
