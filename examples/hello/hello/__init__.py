"""A tiny application for packer's quick start (until sample_server is packed instead)."""
