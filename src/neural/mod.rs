//! Neural voices that run on this machine: Kokoro-82M and Piper through ONNX Runtime.

pub mod normalize;
pub mod zh;
