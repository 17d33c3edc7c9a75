"""The Python side of `make bench`'s Whisper real-time factor case.

Transcribes one recording with the `faster-whisper` package on the CTranslate2 model that
aimake's ggml test model was converted from, with a compute type, a thread count and a beam
size given by the caller; everything else is faster-whisper's default (no VAD filter, no word
timestamps, temperature fallback, previous text as context). It warms up once and prints a
JSON line of versions and settings; then each line read from standard input starts one timed
transcription, answered by a JSON line of its audio and wall seconds and the text heard. The
caller alternates these rounds with its own, so both sides see the same load on the machine.

    python whisper_python.py --model DIR --audio FILE --compute-type default --threads 2 \
        --beam-size 5 --language en
"""

import argparse
import importlib.metadata
import json
import platform
import sys
import time

import ctranslate2
from faster_whisper import WhisperModel


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--audio", required=True)
    parser.add_argument("--compute-type", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--beam-size", type=int, required=True)
    parser.add_argument("--language", required=True)
    args = parser.parse_args()

    # One worker: one transcription at a time, as aimake hears one piece at a time.
    model = WhisperModel(
        args.model,
        device="cpu",
        compute_type=args.compute_type,
        cpu_threads=args.threads,
        num_workers=1,
    )

    def hear():
        segments, info = model.transcribe(
            args.audio, beam_size=args.beam_size, language=args.language
        )
        # Segments are decoded as the generator is read.
        text = "".join(segment.text for segment in segments).strip()
        return info.duration, text

    hear()  # warm-up: first-run allocations and caches
    say(
        {
            "ready": True,
            "threads": args.threads,
            "beam_size": args.beam_size,
            # What "default" resolved to on this CPU (the model's own type when supported).
            "compute_type": model.model.compute_type,
            "versions": {
                "faster-whisper": importlib.metadata.version("faster-whisper"),
                "ctranslate2": ctranslate2.__version__,
                "python": platform.python_version(),
            },
        }
    )
    # One transcription per line read, so the caller can alternate rounds with its own.
    for _ in sys.stdin:
        start = time.perf_counter()
        audio_s, text = hear()
        say({"audio_s": audio_s, "wall_s": time.perf_counter() - start, "text": text})


def say(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
