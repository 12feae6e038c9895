"""Reading, writing and vetting spreadsheet files (xlsx and csv)."""
