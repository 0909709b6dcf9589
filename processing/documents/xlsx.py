"""Excel workbooks (XLSX) with openpyxl: one unit per sheet, rows as readable lines.

openpyxl runs in read-only mode, which streams each sheet's XML instead of building every
cell object up front, and with ``data_only`` so formulas show their last computed value
(what the author saw), not ``=SUM(B2:B9)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from processing.documents.base import Block, Document, DocumentError, Limits, Unit
from processing.documents.text import checked_units, clean, describe, one_line, table_block

# Rows per table block, so a 100,000-row sheet becomes many modest chunks.
ROWS_PER_BLOCK = 50
# Columns kept per row; real tables are far narrower than Excel's 16,384.
MAX_COLUMNS = 256
# A cell holding a whole essay is cut: it is one cell of a table, not the document.
MAX_CELL_CHARS = 2_000


def read(path: Path, limits: Limits) -> Document:
    """Open the workbook now (sheet list, shared strings); sheets stream as they are read."""
    try:
        workbook = load_workbook(str(path), read_only=True, data_only=True)
        sheets = list(workbook.worksheets)
        title = clean(workbook.properties.title) or None
    except Exception as exc:
        raise DocumentError(f"XLSX file cannot be opened: {describe(exc)}") from exc
    document = Document(format="xlsx", unit_count=len(sheets), units=iter(()), title=title)
    document.units = checked_units(_units(workbook, sheets, document), limits, label="XLSX")
    return document


def _units(
    workbook: Workbook, sheets: list[ReadOnlyWorksheet], document: Document
) -> Iterator[Unit]:
    try:
        for number, sheet in enumerate(sheets, start=1):
            yield Unit(number=number, kind="sheet", blocks=list(_sheet_blocks(sheet, document)))
    finally:
        workbook.close()  # read-only mode keeps the archive open until told otherwise


def _sheet_blocks(sheet: ReadOnlyWorksheet, document: Document) -> Iterator[Block]:
    yield Block(one_line(sheet.title), kind="heading", level=1)
    # The <dimension> a writer records is often wrong; forget it and read what is there.
    # Without a width, openpyxl makes each row as wide as its own last cell.
    sheet.reset_dimensions()
    rows: list[list[str]] = []
    truncated = False
    for row in sheet.iter_rows(values_only=True):
        values = row[:MAX_COLUMNS]
        truncated = truncated or len(row) > MAX_COLUMNS
        if values.count(None) == len(values):
            continue
        last = len(values)
        while values[last - 1] is None:
            last -= 1
        rows.append([_cell_text(value) for value in values[:last]])
        if len(rows) >= ROWS_PER_BLOCK:
            block = table_block(rows)
            rows = []
            if block:
                yield block
    block = table_block(rows)
    if block:
        yield block
    if truncated:
        document.warnings.append(
            f"Sheet {sheet.title!r}: only the first {MAX_COLUMNS} columns were read"
        )


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ").removesuffix(" 00:00:00")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return str(value)[:MAX_CELL_CHARS]  # cleaned with the row, in table_block
