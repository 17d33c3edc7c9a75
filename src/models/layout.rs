//! Where installed model files live under `models.dir`. The manager writes this layout and the
//! neural providers read it; nothing else knows the paths.
//!
//! ```text
//! <models.dir>/runtime/libonnxruntime.so.<version>
//! <models.dir>/kokoro/kokoro-v1.0.int8.onnx
//! <models.dir>/kokoro/voices/<voice>.bin
//! <models.dir>/piper/<voice>.onnx  and  <voice>.onnx.json
//! <models.dir>/whisper/ggml-<variant>.bin     official Whisper models (`whisper:<variant>`)
//! <models.dir>/whisper/custom/<name>.bin      a user's own ggml file, imported unverified
//! <models.dir>/.partial/            downloads in progress (never read as installed)
//! ```

use std::path::{Path, PathBuf};

/// The file name of Kokoro-82M v1.0's int8 ONNX export.
pub const KOKORO_MODEL_FILE: &str = "kokoro-v1.0.int8.onnx";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

/// One installed Piper voice: its model and the JSON config beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiperFiles {
    /// The official voice name, `en_US-joe-medium`.
    pub name: String,
    pub onnx: PathBuf,
    pub config: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.root.join("runtime")
    }

    /// The newest installed `libonnxruntime.so.*` (by name), if any.
    pub fn runtime_library(&self) -> Option<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.runtime_dir())
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so"))
            })
            .collect();
        found.sort();
        found.pop()
    }

    pub fn kokoro_dir(&self) -> PathBuf {
        self.root.join("kokoro")
    }

    pub fn kokoro_model(&self) -> PathBuf {
        self.kokoro_dir().join(KOKORO_MODEL_FILE)
    }

    pub fn kokoro_voices_dir(&self) -> PathBuf {
        self.kokoro_dir().join("voices")
    }

    pub fn kokoro_voice(&self, voice: &str) -> PathBuf {
        self.kokoro_voices_dir().join(format!("{voice}.bin"))
    }

    /// The names of the installed Kokoro voice files, sorted.
    pub fn kokoro_voices(&self) -> Vec<String> {
        stems(&self.kokoro_voices_dir(), "", ".bin")
    }

    pub fn piper_dir(&self) -> PathBuf {
        self.root.join("piper")
    }

    pub fn piper_voice(&self, name: &str) -> PiperFiles {
        let dir = self.piper_dir();
        PiperFiles {
            name: name.to_string(),
            onnx: dir.join(format!("{name}.onnx")),
            config: dir.join(format!("{name}.onnx.json")),
        }
    }

    /// Every Piper voice whose model and config are both installed, sorted by name.
    pub fn piper_voices(&self) -> Vec<PiperFiles> {
        stems(&self.piper_dir(), "", ".onnx")
            .into_iter()
            .map(|n| self.piper_voice(&n))
            .filter(|f| f.config.is_file())
            .collect()
    }

    pub fn whisper_dir(&self) -> PathBuf {
        self.root.join("whisper")
    }

    /// An official Whisper model by its variant (`base`, `base.en`, `small-q5_1`), under the
    /// file name whisper.cpp publishes it as.
    pub fn whisper_model(&self, variant: &str) -> PathBuf {
        self.whisper_dir().join(format!("ggml-{variant}.bin"))
    }

    pub fn whisper_custom_dir(&self) -> PathBuf {
        self.whisper_dir().join("custom")
    }

    /// A user's own ggml file, imported under `name`.
    pub fn whisper_custom(&self, name: &str) -> PathBuf {
        self.whisper_custom_dir().join(format!("{name}.bin"))
    }

    /// The variants of the installed official Whisper models, sorted.
    pub fn whisper_models(&self) -> Vec<String> {
        stems(&self.whisper_dir(), "ggml-", ".bin")
    }

    /// The names of the imported Whisper models, sorted.
    pub fn whisper_customs(&self) -> Vec<String> {
        stems(&self.whisper_custom_dir(), "", ".bin")
    }

    /// Where downloads wait until they are complete and verified.
    pub fn partial_dir(&self) -> PathBuf {
        self.root.join(".partial")
    }
}

/// The names of the files in `dir` that start with `prefix` and end with `suffix`, with both
/// taken off, sorted.
fn stems(dir: &Path, prefix: &str, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix(prefix)?
                .strip_suffix(suffix)
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_files_are_found_and_half_installed_piper_voices_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let l = Layout::new(dir.path());
        assert_eq!(l.runtime_library(), None);
        assert!(l.kokoro_voices().is_empty());
        std::fs::create_dir_all(l.runtime_dir()).unwrap();
        std::fs::write(l.runtime_dir().join("libonnxruntime.so.1.32.0"), b"x").unwrap();
        std::fs::create_dir_all(l.kokoro_voices_dir()).unwrap();
        std::fs::write(l.kokoro_voice("af_heart"), b"x").unwrap();
        std::fs::write(l.kokoro_voice("zf_xiaobei"), b"x").unwrap();
        std::fs::create_dir_all(l.piper_dir()).unwrap();
        std::fs::write(l.piper_voice("en_US-joe-medium").onnx, b"x").unwrap();
        std::fs::write(l.piper_voice("en_US-joe-medium").config, b"{}").unwrap();
        std::fs::write(l.piper_voice("en_US-amy-low").onnx, b"x").unwrap();
        assert_eq!(
            l.runtime_library().unwrap().file_name().unwrap(),
            "libonnxruntime.so.1.32.0"
        );
        assert_eq!(l.kokoro_voices(), ["af_heart", "zf_xiaobei"]);
        let piper: Vec<String> = l.piper_voices().into_iter().map(|p| p.name).collect();
        assert_eq!(piper, ["en_US-joe-medium"]);
        assert!(l.whisper_models().is_empty());
        std::fs::create_dir_all(l.whisper_custom_dir()).unwrap();
        std::fs::write(l.whisper_model("base"), b"x").unwrap();
        std::fs::write(l.whisper_model("small.en-q5_1"), b"x").unwrap();
        std::fs::write(l.whisper_dir().join("notes.txt"), b"x").unwrap();
        std::fs::write(l.whisper_custom("my-finetune"), b"x").unwrap();
        assert_eq!(l.whisper_models(), ["base", "small.en-q5_1"]);
        assert_eq!(l.whisper_customs(), ["my-finetune"]);
    }
}
