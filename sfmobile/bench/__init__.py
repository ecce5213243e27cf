"""`sfmobile bench`: time every component and the whole text-to-image run per backend and
precision, each case in a fresh process, against diffusers and this CPU's nominal peak.

Lives inside the package (not in the top-level benchmarks/ folder, which holds results and
their README) so that the command works from an installed wheel, where benchmarks/ is absent.
"""
