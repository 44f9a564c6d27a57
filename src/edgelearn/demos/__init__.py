"""Runnable demonstrations behind ``edgelearn demo NAME``."""
