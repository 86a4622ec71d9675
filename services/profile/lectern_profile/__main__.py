"""`python -m lectern_profile` runs the profile service."""

from lectern_common.serve import serve
from lectern_profile.settings import ProfileSettings

if __name__ == "__main__":
    s = ProfileSettings()
    serve("lectern_profile.app:create_app", host=s.host, port=s.port)
