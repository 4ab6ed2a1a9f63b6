"""Excel's limits, which every XLSX amlcohort writes respects (a bundle export refuses what does not
fit; the report's workbook cuts it visibly and says where the whole is)."""

#: The most characters an XLSX cell holds.
XLSX_MAX_CELL_CHARS = 32_767

#: The most rows a worksheet holds, its header included (openpyxl writes more; Excel cannot open it).
XLSX_MAX_ROWS = 1_048_576
