"""The expression language: expressions, plugin files, correctionlib corrections."""
