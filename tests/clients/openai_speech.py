"""The official OpenAI Python SDK against aimake's /v1 speech API.

Run by tests/api/gateway.rs with OPENAI_BASE_URL (the server's /v1) and OPENAI_API_KEY (an
aimake API token). Prints one JSON report of what the SDK got; the Rust test judges it.
"""

import base64
import json
import os
import sys

import openai

TEXT = "Hello from the official OpenAI SDK."


def client(key=None):
    # No retries: a refusal must reach the report as it was answered.
    return openai.OpenAI(
        base_url=os.environ["OPENAI_BASE_URL"],
        api_key=key or os.environ["OPENAI_API_KEY"],
        max_retries=0,
        timeout=60,
    )


def refusal(call):
    try:
        call()
    except openai.APIStatusError as e:
        return {
            "class": type(e).__name__,
            "status": e.status_code,
            "code": e.code,
            "type": e.type,
            "param": e.param,
            "message": e.message,
        }
    return {"class": None}


def main():
    c = client()
    report = {}

    plain = c.audio.speech.create(model="tts-1", voice="alloy", input=TEXT)
    report["plain"] = {
        "content_type": plain.response.headers.get("content-type"),
        "hex": plain.content.hex(),
    }

    with c.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=TEXT, response_format="wav"
    ) as response:
        body = b"".join(response.iter_bytes())
        report["streamed"] = {
            "content_type": response.headers.get("content-type"),
            "hex": body.hex(),
        }

    types, audio, usage = [], b"", None
    with c.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="coral", input=TEXT, stream_format="sse"
    ) as response:
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: "):])
            types.append(event["type"])
            if event["type"] == "speech.audio.delta":
                audio += base64.b64decode(event["audio"])
            elif event["type"] == "speech.audio.done":
                usage = event["usage"]
    report["sse"] = {"types": types, "usage": usage, "hex": audio.hex()}

    report["models"] = sorted(m.id for m in c.models.list())

    report["bad_key"] = refusal(
        lambda: client("amk_wrong").audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT
        )
    )
    report["unknown_model"] = refusal(
        lambda: c.audio.speech.create(model="tts-9", voice="alloy", input=TEXT)
    )
    report["aac"] = refusal(
        lambda: c.audio.speech.create(
            model="tts-1", voice="alloy", input=TEXT, response_format="aac"
        )
    )
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
