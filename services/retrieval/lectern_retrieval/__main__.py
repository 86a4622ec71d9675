"""`python -m lectern_retrieval` runs the retrieval service."""

from lectern_common.serve import serve
from lectern_retrieval.settings import RetrievalSettings

if __name__ == "__main__":
    s = RetrievalSettings()
    serve("lectern_retrieval.app:create_app", host=s.host, port=s.port)
