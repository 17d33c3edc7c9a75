"""The Python side of `make bench`'s neural throughput cases.

Speaks one text with the `kokoro-onnx` or `piper-tts` package on the same model file, voice
and thread count as aimake. It warms up once and prints a JSON line of versions and settings;
then each line read from standard input starts one timed synthesis, answered by a JSON line of
its audio and wall seconds. The caller alternates these rounds with its own, so both sides
see the same load on the machine.

    python neural_python.py kokoro --fixtures DIR --text FILE --threads 2 --tmp DIR
    python neural_python.py piper  --fixtures DIR --text FILE --threads 2
"""

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time

import numpy as np
import onnxruntime as ort


def session(model: str, threads: int) -> ort.InferenceSession:
    """A CPU session with `threads` intra-op threads, the rest left at onnxruntime's defaults."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model, sess_options=options, providers=["CPUExecutionProvider"]
    )


def kokoro_voices(fixtures: str, tmp: str) -> str:
    """kokoro-onnx reads every voice from one .npz: build it from the per-voice files."""
    voices_dir = os.path.join(fixtures, "mirror", "voices")
    voices = {}
    for name in sorted(os.listdir(voices_dir)):
        if not name.endswith(".bin"):
            continue
        table = np.fromfile(os.path.join(voices_dir, name), dtype="<f4")
        # 510 rows of one 256-float style vector each, as kokoro-onnx indexes them.
        voices[name[: -len(".bin")]] = table.reshape(510, 1, 256)
    path = os.path.join(tmp, "voices-v1.0.bin")
    with open(path, "wb") as f:
        np.savez(f, **voices)
    return path


def kokoro(args):
    from kokoro_onnx import Kokoro

    model = os.path.join(args.fixtures, "mirror", "kokoro-v1.0.int8.onnx")
    tts = Kokoro.from_session(
        session(model, args.threads), kokoro_voices(args.fixtures, args.tmp)
    )

    def speak(text):
        audio, rate = tts.create(text, voice="af_heart", speed=1.0, lang="en-us")
        return len(audio) / rate

    return speak, {"kokoro-onnx": importlib.metadata.version("kokoro-onnx")}


def piper(args):
    from piper import PiperVoice
    from piper.config import PiperConfig, SynthesisConfig

    model = os.path.join(args.fixtures, "mirror", "en_US-joe-medium.onnx")
    with open(model + ".json", encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    # PiperVoice.load builds its session with default options; the same class built around
    # a session of our own has the thread count set.
    voice = PiperVoice(config=config, session=session(model, args.threads))
    # Noise scales 0, as aimake runs Piper: both sides then make the same audio from the same
    # phonemes. The voice's own scales (piper-tts's default) draw random durations, which
    # lengthen the audio by 0.5-1.5% at the same cost and so would flatter audio seconds.
    syn = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def speak(text):
        samples = 0
        rate = config.sample_rate
        for chunk in voice.synthesize(text, syn_config=syn):
            samples += len(chunk.audio_float_array)
            rate = chunk.sample_rate
        return samples / rate

    return speak, {
        "piper-tts": importlib.metadata.version("piper-tts"),
        "noise_scale": syn.noise_scale,
        "noise_w_scale": syn.noise_w_scale,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("engine", choices=["kokoro", "piper"])
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--text", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--tmp", default=None)
    args = parser.parse_args()
    with open(args.text, encoding="utf-8") as f:
        text = f.read()

    speak, versions = (kokoro if args.engine == "kokoro" else piper)(args)
    speak(text)  # warm-up: first-run allocations and caches
    versions.update(
        {
            "onnxruntime": ort.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        }
    )
    say(
        {
            "ready": True,
            "threads": args.threads,
            "graph_optimization_level": "ORT_ENABLE_ALL (default)",
            "versions": versions,
        }
    )
    # One synthesis per line read, so the caller can alternate rounds with its own.
    for _ in sys.stdin:
        start = time.perf_counter()
        audio_s = speak(text)
        say({"audio_s": audio_s, "wall_s": time.perf_counter() - start})


def say(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
