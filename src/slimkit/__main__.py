"""``python -m slimkit``: the command line."""

from slimkit.cli import run

if __name__ == "__main__":
    run()
