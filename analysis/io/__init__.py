"""Event input: file identities, column lists, skims, the demo generator, datasets."""
