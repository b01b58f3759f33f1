"""(Re)write the ICT-FaceKit model embedded in the package, from the upstream files.

    python scripts/build_embedded_model.py --source DIR [-o FILE]

DIR holds the ICT-FaceKit ``FaceXModel`` files (or a ``FaceXModel/`` folder), e.g.
``../shared/models/ict-facekit``. Default output: ``morphable_models/data/ict_facekit.npz``
of this checkout. The upstream LICENSE text is kept beside it (ict_facekit_LICENSE.txt).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from morphable_models.embedded import EMBEDDED_FILES, build_embedded_ict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, type=Path, help="folder with the ICT-FaceKit FaceXModel files")
    ap.add_argument("-o", "--output", type=Path, default=EMBEDDED_FILES["ict"], help="file to write")
    args = ap.parse_args()
    out = build_embedded_ict(args.source, args.output)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
