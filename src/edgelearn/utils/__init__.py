"""Small helpers shared by edgelearn modules (files, downloads, node packages)."""
