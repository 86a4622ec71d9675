"""`python -m lectern_chat` runs the chat service."""

from lectern_chat.settings import ChatSettings
from lectern_common.serve import serve

if __name__ == "__main__":
    s = ChatSettings()
    serve("lectern_chat.app:create_app", host=s.host, port=s.port)
