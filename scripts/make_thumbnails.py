"""Template-browser thumbnails `workflows/NAME.jpg` from the UI test's screenshots.

    python3 scripts/host.py test tests/ui && python3 scripts/make_thumbnails.py [SCREENSHOT_DIR]

ComfyUI's template browser shows `NAME.jpg` next to `NAME.json` in a pack's workflows folder. The UI test's
`NAME.png` is the graph alone, zoomed to fill the canvas (no menus, side bars or toasts); it is scaled to
640 px wide.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WIDTH = 640


def make(shots: Path, out: Path = REPO / "workflows") -> list[Path]:
    from PIL import Image
    written = []
    for png in sorted(shots.glob("*.png")):
        if not (out / f"{png.stem}.json").is_file():
            continue
        img = Image.open(png).convert("RGB")
        img = img.resize((WIDTH, round(img.height * WIDTH / img.width)), Image.LANCZOS)
        path = out / f"{png.stem}.jpg"
        img.save(path, quality=80, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ZEROVIDEO_ARTIFACTS")
               or REPO / ".cache" / "ui-screenshots")
    for p in make(src):
        print("wrote", p.relative_to(REPO))
