"""Durable loops of the center, one folder per workflow."""
