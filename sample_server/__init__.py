"""sample_server: a daemonized, multi-process TCP echo server, packer's demonstration app."""

__version__ = "0.1.0"
