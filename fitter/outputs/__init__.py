"""FitResult -> files, and the Open3D viewer.

Modules (import the one you need; this package imports nothing heavy on its own):
``writer`` (all outputs of one fit, ``fit.json`` last), ``mesh_io`` (OBJ/PLY), ``fit_files``
(npz/json/npy), ``parts_map`` (parts.png), ``overlay`` and ``mesh_render`` (overlay.png),
``curves`` (CSV and plots), ``animation`` (GIF/MP4), ``viewer`` (Open3D), ``palette`` (part
colours), ``fitted_mesh`` (the posed mesh), ``atomic`` (atomic writes).
"""
