"""Transcribes and translates a recording through aimake with the official OpenAI SDK.

Usage: openai_transcriptions.py BASE_URL API_KEY RECORDING

Prints one JSON object with what each call returned, for the Rust test that runs this
(tests/api/transcriptions.rs) to check.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, api_key, recording = sys.argv[1:4]
    client = OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=120)

    def transcribe(**kwargs):
        with open(recording, "rb") as f:
            return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)

    out = {}
    out["json"] = transcribe().text
    verbose = transcribe(response_format="verbose_json", timestamp_granularities=["word"])
    out["verbose_json"] = {
        "language": verbose.language,
        "duration": verbose.duration,
        "text": verbose.text,
        "words": [[w.word, w.start, w.end] for w in (verbose.words or [])],
    }
    out["srt"] = transcribe(response_format="srt")
    out["vtt"] = transcribe(response_format="vtt")
    with open(recording, "rb") as f:
        out["translation"] = client.audio.translations.create(model="whisper-1", file=f).text
    print(json.dumps(out))


if __name__ == "__main__":
    main()
