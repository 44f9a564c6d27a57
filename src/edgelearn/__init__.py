"""edgelearn."""
