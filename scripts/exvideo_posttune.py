"""Moved: the ExVideo post-tuning trainer is now training/exvideo_posttune.py (`python -m training.exvideo_posttune`).

This earlier name keeps working (it ships in the registry archive for that reason): it says where the trainer
went and runs it with the same arguments.
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training.exvideo_posttune import main  # noqa: E402

if __name__ == "__main__":
    print("exvideo_posttune: the trainer moved to training/exvideo_posttune.py; next time run "
          "`python -m training.exvideo_posttune` (this name still works)", file=sys.stderr)
    sys.exit(main())
