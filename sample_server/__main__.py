"""``python -m sample_server``: the command line."""

from sample_server.cli import main

main(prog_name="sample-server")
