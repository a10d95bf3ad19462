"""The statistical model: model spec, pyhf workspaces, fits, limits."""
