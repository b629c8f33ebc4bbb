"""``python -m palm_lightning`` — see :mod:`palm_lightning.cli`."""

from palm_lightning.cli import main

main()
