"""Plots of fit products."""
