"""Camera conventions shared by the fit, the synthetic renders and the configuration (no torch).

* The model is flipped into the camera's axes (OpenCV: x right, y down, z forward) by
  ``F = diag(MODEL_TO_CAMERA_DIAG)`` before it is posed (see :mod:`fitter.geometry.camera`).
* The paper's fixed camera (Deep3DFaceRecon's) has a focal length of ``FOCAL_224`` pixels for a
  224-pixel crop, scaled linearly with the crop width.
"""

#: Diagonal of the fixed model -> camera axis flip F = diag(1, -1, -1).
MODEL_TO_CAMERA_DIAG = (1.0, -1.0, -1.0)

#: Focal length in pixels of the paper's setup for a 224-pixel crop (Deep3DFaceRecon camera).
FOCAL_224 = 1015.0
