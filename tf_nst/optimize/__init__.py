"""The optimisation path (Gatys et al.): one image optimised until its features match.

`optimization` holds the run (`Optimization`, a generator of step results), `lbfgs` the L-BFGS
driver, `scales` the coarse-to-fine plan, `memory` the run's memory estimate and `job` its mapping
onto the run machinery (`tf_nst.run`).
"""
