//! Reads a whisper.cpp model file (the legacy ggml format) far enough to know it is one whole
//! Whisper model: its header, its vocabulary and where every tensor starts and ends. Nothing
//! is loaded; an import uses this to refuse a file whisper.cpp could not load.
//!
//! ```text
//! u32 magic 0x67676d6c | 11 × i32 hyperparameters | i32 n_mel, i32 n_fft, f32 filters[n_mel × n_fft]
//! i32 n_tokens, then n_tokens × (u32 length, bytes)
//! tensors until the end: i32 n_dims, i32 name length, i32 type, n_dims × i32 extent, name, data
//! ```

use std::io::{BufReader, Read, Seek};
use std::path::Path;

use serde::Serialize;

const MAGIC: u32 = 0x6767_6d6c;
/// The vocabulary of the English-only models, the multilingual ones, and large-v3 and later.
const VOCABULARIES: [i32; 3] = [51_864, 51_865, 51_866];
/// Above any Whisper's layers, heads, widths and contexts; a header past them is not one.
const MAX_LAYERS: i32 = 128;
const MAX_WIDTH: i32 = 8_192;
const MAX_CONTEXT: i32 = 4_096;
/// whisper.cpp adds this times the quantization version to `ftype`.
const QNT_VERSION_FACTOR: i32 = 1_000;
const MAX_TOKEN_BYTES: u32 = 1_024;
const MAX_NAME_BYTES: i32 = 512;

/// A Whisper model's hyperparameters, as its file gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Hparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    pub ftype: i32,
}

impl Hparams {
    /// The English-only models have one token fewer than the multilingual ones.
    pub fn multilingual(&self) -> bool {
        self.n_vocab != VOCABULARIES[0]
    }

    /// The tensors whisper.cpp expects: per encoder layer 15 (two layer norms, attention with
    /// q/k/v/out, a two-layer MLP), per decoder layer 24 (with cross-attention), and 11 others.
    fn tensor_count(&self) -> u64 {
        7 + 15 * self.n_audio_layer as u64 + 4 + 24 * self.n_text_layer as u64
    }
}

/// Why a file is not a whole whisper.cpp model.
#[derive(Debug, thiserror::Error)]
pub enum GgmlError {
    #[error(
        "it is not a whisper.cpp model: {0} (expected a ggml file such as ggml-base.bin, as whisper.cpp's conversion scripts write it)"
    )]
    NotGgml(String),
    #[error("it is not a Whisper model: {0}")]
    NotWhisper(String),
    #[error("it is cut short: {0}; copy it again")]
    Truncated(String),
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks the whole file at `path` and returns its hyperparameters.
pub fn check_file(path: &Path) -> Result<Hparams, GgmlError> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    check(&mut BufReader::with_capacity(64 * 1024, file), len)
}

/// Reads only the header of the file at `path` (for listing what is installed).
pub fn read_hparams(path: &Path) -> Result<Hparams, GgmlError> {
    let mut file = BufReader::new(std::fs::File::open(path)?);
    header(&mut file)
}

/// Checks a model of `len` bytes from its first byte.
pub fn check(r: &mut (impl Read + Seek), len: u64) -> Result<Hparams, GgmlError> {
    let h = header(r)?;
    let truncated = |what: &str| GgmlError::Truncated(format!("it ends inside {what}"));
    let mut at = 4 + 11 * 4;

    let n_mel = read_i32(r).map_err(|_| truncated("the mel filters"))?;
    let n_fft = read_i32(r).map_err(|_| truncated("the mel filters"))?;
    if n_mel != h.n_mels || !(1..=MAX_WIDTH).contains(&n_fft) {
        return Err(GgmlError::NotWhisper(format!(
            "its mel filter bank is {n_mel} × {n_fft} for {} mel bins",
            h.n_mels
        )));
    }
    let filters = 4 * n_mel as u64 * n_fft as u64;
    at += 8 + filters;
    skip(r, filters, at, len).map_err(|_| truncated("the mel filters"))?;

    let n_tokens = read_i32(r).map_err(|_| truncated("the vocabulary"))?;
    if !(0..=h.n_vocab).contains(&n_tokens) {
        return Err(GgmlError::NotWhisper(format!(
            "its vocabulary has {n_tokens} tokens for n_vocab {}",
            h.n_vocab
        )));
    }
    at += 4;
    for _ in 0..n_tokens {
        let n = read_u32(r).map_err(|_| truncated("the vocabulary"))?;
        if n > MAX_TOKEN_BYTES {
            return Err(GgmlError::NotWhisper(format!(
                "a token of its vocabulary is {n} bytes long"
            )));
        }
        at += 4 + n as u64;
        skip(r, n as u64, at, len).map_err(|_| truncated("the vocabulary"))?;
    }

    let mut tensors = 0u64;
    while at < len {
        let n_dims = read_i32(r).map_err(|_| truncated("a tensor's header"))?;
        let name_len = read_i32(r).map_err(|_| truncated("a tensor's header"))?;
        let ttype = read_i32(r).map_err(|_| truncated("a tensor's header"))?;
        if !(1..=4).contains(&n_dims) || !(1..=MAX_NAME_BYTES).contains(&name_len) {
            return Err(GgmlError::NotWhisper(format!(
                "tensor {} has {n_dims} dimensions and a {name_len}-byte name",
                tensors + 1
            )));
        }
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let ne = read_i32(r).map_err(|_| truncated("a tensor's header"))?;
            if ne < 1 {
                return Err(GgmlError::NotWhisper(format!(
                    "tensor {} has an extent of {ne}",
                    tensors + 1
                )));
            }
            elements = elements.saturating_mul(ne as u64);
        }
        let mut name = vec![0u8; name_len as usize];
        r.read_exact(&mut name)
            .map_err(|_| truncated("a tensor's header"))?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let bytes = tensor_bytes(ttype, elements).ok_or_else(|| {
            GgmlError::NotWhisper(format!(
                "tensor {name} has type {ttype}, which is not a ggml type whisper.cpp loads"
            ))
        })?;
        at += 12 + 4 * n_dims as u64 + name_len as u64 + bytes;
        skip(r, bytes, at, len).map_err(|_| {
            GgmlError::Truncated(format!(
                "it ends inside tensor {name} ({len} bytes, at least {at} needed)"
            ))
        })?;
        tensors += 1;
    }
    if tensors != h.tensor_count() {
        return Err(GgmlError::Truncated(format!(
            "it holds {tensors} tensors where a model with {} encoder and {} decoder layers has {}",
            h.n_audio_layer,
            h.n_text_layer,
            h.tensor_count()
        )));
    }
    Ok(h)
}

fn header(r: &mut impl Read) -> Result<Hparams, GgmlError> {
    let magic = read_u32(r).map_err(|_| GgmlError::NotGgml("it is shorter than 4 bytes".into()))?;
    if magic != MAGIC {
        let bytes = magic.to_le_bytes();
        let what = if &bytes == b"GGUF" {
            "it is a GGUF file (a llama.cpp model?)".to_string()
        } else if bytes[0] == 0x08 {
            "it looks like an ONNX file (a Piper or Kokoro voice?)".to_string()
        } else {
            format!(
                "it starts with {:02x} {:02x} {:02x} {:02x}, not the ggml magic 6c 6d 67 67",
                bytes[0], bytes[1], bytes[2], bytes[3]
            )
        };
        return Err(GgmlError::NotGgml(what));
    }
    let mut v = [0i32; 11];
    for x in &mut v {
        *x = read_i32(r).map_err(|_| GgmlError::Truncated("it ends inside its header".into()))?;
    }
    let h = Hparams {
        n_vocab: v[0],
        n_audio_ctx: v[1],
        n_audio_state: v[2],
        n_audio_head: v[3],
        n_audio_layer: v[4],
        n_text_ctx: v[5],
        n_text_state: v[6],
        n_text_head: v[7],
        n_text_layer: v[8],
        n_mels: v[9],
        ftype: v[10],
    };
    if !VOCABULARIES.contains(&h.n_vocab) {
        return Err(GgmlError::NotWhisper(format!(
            "its vocabulary has {} tokens, where Whisper's has 51864 to 51866 (another ggml model?)",
            h.n_vocab
        )));
    }
    if h.n_mels != 80 && h.n_mels != 128 {
        return Err(GgmlError::NotWhisper(format!(
            "it takes {} mel bins, where Whisper takes 80 or 128",
            h.n_mels
        )));
    }
    let sane = [
        (h.n_audio_ctx, MAX_CONTEXT),
        (h.n_text_ctx, MAX_CONTEXT),
        (h.n_audio_state, MAX_WIDTH),
        (h.n_text_state, MAX_WIDTH),
        (h.n_audio_head, MAX_LAYERS),
        (h.n_text_head, MAX_LAYERS),
        (h.n_audio_layer, MAX_LAYERS),
        (h.n_text_layer, MAX_LAYERS),
    ]
    .iter()
    .all(|(x, max)| (1..=*max).contains(x))
        && (0..100 * QNT_VERSION_FACTOR).contains(&h.ftype);
    if !sane {
        return Err(GgmlError::NotWhisper(format!(
            "its hyperparameters are out of range: {h:?}"
        )));
    }
    Ok(h)
}

/// Bytes of a tensor of `elements` of ggml type `ttype`, for the types whisper.cpp writes
/// (f32, f16, bf16, the legacy quantizations and the k-quants).
fn tensor_bytes(ttype: i32, elements: u64) -> Option<u64> {
    let (block_bytes, block) = match ttype {
        0 => (4, 1),
        1 | 30 => (2, 1),
        2 => (18, 32),
        3 => (20, 32),
        6 => (22, 32),
        7 => (24, 32),
        8 => (34, 32),
        10 => (84, 256),
        11 => (110, 256),
        12 => (144, 256),
        13 => (176, 256),
        14 => (210, 256),
        _ => return None,
    };
    Some(elements.div_ceil(block).saturating_mul(block_bytes))
}

/// Moves `n` bytes on, having checked that the file (of `len` bytes) reaches `end`.
fn skip(r: &mut impl Seek, n: u64, end: u64, len: u64) -> std::io::Result<()> {
    if end > len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    r.seek_relative(n as i64)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn read_i32(r: &mut impl Read) -> std::io::Result<i32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(i32::from_le_bytes(b))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Cursor;

    use super::*;

    /// A whole, tiny Whisper model in whisper.cpp's format: one encoder and one decoder layer
    /// of width 4, the right tensors, f16 weights of zeros.
    pub(crate) fn tiny_model(n_vocab: i32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |x: i32| out.extend_from_slice(&x.to_le_bytes());
        put(MAGIC as i32);
        for x in [n_vocab, 8, 4, 1, 1, 4, 4, 1, 1, 80, 1] {
            put(x);
        }
        put(80);
        put(3);
        out.extend(std::iter::repeat_n(0u8, 4 * 80 * 3));
        out.extend_from_slice(&2i32.to_le_bytes());
        for token in [&b"!"[..], b"hello"] {
            out.extend_from_slice(&(token.len() as u32).to_le_bytes());
            out.extend_from_slice(token);
        }
        let h = header(&mut Cursor::new(&out)).unwrap();
        for i in 0..h.tensor_count() {
            let name = format!("t.{i}.weight");
            for x in [2, name.len() as i32, 1, 4, 3] {
                out.extend_from_slice(&x.to_le_bytes());
            }
            out.extend_from_slice(name.as_bytes());
            out.extend(std::iter::repeat_n(0u8, 2 * 12));
        }
        out
    }

    fn checked(bytes: &[u8]) -> Result<Hparams, GgmlError> {
        check(&mut Cursor::new(bytes), bytes.len() as u64)
    }

    #[test]
    fn a_whole_model_passes_and_says_whether_it_is_multilingual() {
        let h = checked(&tiny_model(51_865)).unwrap();
        assert_eq!((h.n_mels, h.n_audio_layer, h.n_text_layer), (80, 1, 1));
        assert!(h.multilingual());
        assert!(!checked(&tiny_model(51_864)).unwrap().multilingual());
        assert!(checked(&tiny_model(51_866)).unwrap().multilingual());
    }

    #[test]
    fn a_cut_model_is_refused_wherever_it_was_cut() {
        let model = tiny_model(51_865);
        for cut in [20, 60, 100, 1_000, 1_020, model.len() - 30, model.len() - 1] {
            let err = checked(&model[..cut]).unwrap_err();
            assert!(
                matches!(err, GgmlError::Truncated(_) | GgmlError::NotWhisper(_)),
                "{cut}: {err}"
            );
        }
        // A whole last tensor missing is seen too: the count is short.
        let last = model.len() - (20 + "t.49.weight".len() + 24);
        let err = checked(&model[..last]).unwrap_err();
        assert!(err.to_string().contains("tensors where a model"), "{err}");
        assert!(err.to_string().contains("cut short"), "{err}");
    }

    #[test]
    fn other_files_are_named_for_what_they_are() {
        let onnx = [0x08, 0x07, 0x12, 0x04, 0x00, 0x00];
        assert!(checked(&onnx).unwrap_err().to_string().contains("ONNX"));
        let gguf = b"GGUF\x03\x00\x00\x00rest";
        assert!(checked(gguf).unwrap_err().to_string().contains("GGUF"));
        let err = checked(b"hello world").unwrap_err();
        assert!(matches!(err, GgmlError::NotGgml(_)), "{err}");
        assert!(checked(b"").is_err());
        // A ggml file of another model: its vocabulary is not Whisper's.
        let mut llama = tiny_model(51_865);
        llama[4..8].copy_from_slice(&32_000i32.to_le_bytes());
        let err = checked(&llama).unwrap_err();
        assert!(matches!(err, GgmlError::NotWhisper(_)), "{err}");
        assert!(err.to_string().contains("32000"), "{err}");
        // 100 mel bins is no Whisper.
        let mut mels = tiny_model(51_865);
        mels[40..44].copy_from_slice(&100i32.to_le_bytes());
        assert!(
            checked(&mels)
                .unwrap_err()
                .to_string()
                .contains("100 mel bins")
        );
    }

    #[test]
    fn bytes_after_the_last_tensor_are_refused() {
        let mut model = tiny_model(51_865);
        model.extend_from_slice(&[1, 0, 0, 0]);
        assert!(checked(&model).is_err());
    }
}
