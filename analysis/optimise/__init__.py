"""Gradient-based optimisation of an analysis's cuts (issue 16): the loose selection
(:mod:`.loose`), soft templates (:mod:`.templates`), the model's yields from them
(:mod:`.yields`), the objective (:mod:`.objective`), the search (:mod:`.search`) and the
config fork (:mod:`.fork`). docs/optimise.md is the user's guide."""
