"""The names of a folder's report (``twin report``): one definition for the writer
(twin.report.page) and for the commands that clear a folder (``--force``, ``--resume``)."""

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"  # a folder: NAME.png and NAME.svg of every plot in the report
REPORT_FILES = (REPORT_FILE, PLOTS_DIR)
