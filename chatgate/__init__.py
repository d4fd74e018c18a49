"""The composition root and the ``chatgate`` command: where the config becomes concrete channels and consoles."""
