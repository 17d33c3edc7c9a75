//! Neural voices that run on this machine: Kokoro-82M and Piper through ONNX Runtime.
