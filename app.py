"""Serve the chat at http://127.0.0.1:7860: the same as `regional-chat serve`.

    python app.py [--host 127.0.0.1] [--port 7860] [--corpus corpus] [--index index] [--read-only]

The index is built or brought up to date from the corpus first (only new and
changed documents are embedded). A login for the page comes from
REGIONAL_CHAT_AUTH=user:password (not a flag: flags show up in `ps`).
Flags and environment variables are parsed once, by the CLI's serve command.
"""

import sys

from regional_chat.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
