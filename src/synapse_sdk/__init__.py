"""Synapse export SDK."""
