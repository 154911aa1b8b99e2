"""OCR through Tesseract, when it is installed: Debian's `tesseract-ocr` and the `pytesseract` wrapper (the `ocr`
extra). Used for PDF pages that are images only; without it such pages are named, never silently dropped."""

from __future__ import annotations

import functools
import os

HOW_TO_ENABLE = (
    "to read image-only pages by OCR, install Tesseract (`apt install tesseract-ocr tesseract-ocr-eng`) and "
    "`pip install 'ftstudio[ocr]'`, then ingest again"
)
# Tesseract's languages for OCR, e.g. "eng+deu" (each needs its tesseract-ocr-LANG package).
LANGUAGES = os.environ.get("FTSTUDIO_OCR_LANG", "eng")


@functools.cache
def available() -> bool:
    """Whether OCR can run here: pytesseract importable and the tesseract program found."""
    try:
        import pytesseract

        pytesseract.get_tesseract_version()
    except Exception:  # not installed, not on PATH, or not runnable: all mean no OCR
        return False
    return True


def image_to_text(image) -> str:
    """The text Tesseract reads in a PIL image."""
    import pytesseract

    return pytesseract.image_to_string(image, lang=LANGUAGES)
