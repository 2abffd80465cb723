"""What operators run: the command line (`python -m app`, cli.py) and the start-up work
the server and the command line share (bootstrap.py: migrations, the first superuser)."""
