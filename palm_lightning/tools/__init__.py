"""Command-line tools beside the LightningCLI (``python -m palm_lightning.tools.<name>``)."""
