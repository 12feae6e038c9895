"""Reading, writing and vetting spreadsheet files (xlsx, xls, xlsb, ods and csv)."""
