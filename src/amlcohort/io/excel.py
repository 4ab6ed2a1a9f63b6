"""Excel's limits, which every XLSX amlcohort writes respects (a bundle export refuses what does not
fit; the report's workbook cuts it visibly and says where the whole is), and reproducible workbooks:
the same tables give the same bytes (:func:`reproducible_xlsx`)."""

from __future__ import annotations

import io
import re
import zipfile

#: The most characters an XLSX cell holds.
XLSX_MAX_CELL_CHARS = 32_767

#: The most rows a worksheet holds, its header included (openpyxl writes more; Excel cannot open it).
XLSX_MAX_ROWS = 1_048_576

#: The date of every part of a reproducible workbook: the zip format's first (as reproducible builds
#: do); the workbook itself claims no creation or modification time.
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_TIME_STAMPS = re.compile(rb"<dcterms:(created|modified)\b[^>]*>[^<]*</dcterms:\1>")


def reproducible_xlsx(data: bytes) -> bytes:
    """``data`` (a workbook openpyxl saved) with the same sheets and no time in it.

    openpyxl writes the time of the run into the document properties (``docProps/core.xml``:
    created, modified) and into every part's zip entry, so two runs on the same cohort gave
    different files, and a different sha256 in ``results.json``. Those two properties (optional in
    Office Open XML) are left out and every part is dated :data:`ZIP_DATE`; nothing else changes.
    """
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "docProps/core.xml":
                body = _TIME_STAMPS.sub(b"", body)
            part = zipfile.ZipInfo(info.filename, date_time=ZIP_DATE)
            part.compress_type = zipfile.ZIP_DEFLATED
            part.external_attr = info.external_attr
            dst.writestr(part, body)
    return out.getvalue()
