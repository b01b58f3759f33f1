"""``python -m fitter.batch INPUT -o OUT ...``: the batch command without the main CLI."""
from fitter.batch.command import batch_command

if __name__ == "__main__":
    batch_command(prog_name="python -m fitter.batch")
