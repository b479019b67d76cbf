"""Build-time (and fallback) creation of the SQLite database: ``python3 -m datahub.initdb PATH``."""
import os
import sys

from .db import connect, init_db


def main() -> None:
    """Create the database at ``argv[1]`` and print its users."""
    path = sys.argv[1]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    init_db(path)
    conn = connect(path)
    try:
        users = [r[0] for r in conn.execute("SELECT name FROM users ORDER BY name")]
    finally:
        conn.close()
    print(f"initdb: {path}: users {', '.join(users)}")


if __name__ == "__main__":
    main()
