"""Histograms: filling, merging, files from elsewhere, the AGC's layout."""
