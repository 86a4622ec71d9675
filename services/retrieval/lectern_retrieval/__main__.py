"""`python -m lectern_retrieval` runs the retrieval service."""

# Only serve is imported here: the metrics folder must be emptied before prometheus_client is
# first imported (lectern_common.serve).
from lectern_common.serve import serve

if __name__ == "__main__":
    serve(
        "lectern_retrieval.app:create_app", settings="lectern_retrieval.settings:RetrievalSettings"
    )
