"""`python -m lectern_summary` runs the summary service."""

from lectern_common.serve import serve
from lectern_summary.settings import SummarySettings

if __name__ == "__main__":
    s = SummarySettings()
    serve("lectern_summary.app:create_app", host=s.host, port=s.port)
