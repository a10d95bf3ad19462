"""Plots and tables: every region x observable (:mod:`.exploration`), the fit's plots
(:mod:`.plotting`), weighted yield tables (:mod:`.yields`), and the style the config sets
(:mod:`.style`, :mod:`.layout`)."""
