//! The models aimake can install, compiled into the binary: every file's official URL, size and
//! sha256, and the licence each model is used under. Nothing here is read from disk or the
//! network; the manager (`manager.rs`) checks every byte it installs against these values.

use std::path::PathBuf;
use std::sync::LazyLock;

use serde::Serialize;

use super::layout::{KOKORO_MODEL_FILE, Layout};

/// What a model is for, which decides where its files are installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// The ONNX Runtime library every neural voice runs on.
    Runtime,
    Kokoro,
    Piper,
    /// Whisper speech recognition (whisper.cpp's ggml files).
    Whisper,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Runtime => "runtime",
            Self::Kokoro => "kokoro",
            Self::Piper => "piper",
            Self::Whisper => "whisper",
        }
    }
}

/// Where one file ends up under `models.dir` (always through [`Layout`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `runtime/<file name>`.
    RuntimeLibrary(String),
    KokoroModel,
    /// `kokoro/voices/<voice>.bin`.
    KokoroVoice(String),
    /// `piper/<voice>.onnx`.
    PiperModel(String),
    /// `piper/<voice>.onnx.json`.
    PiperConfig(String),
    /// `whisper/ggml-<variant>.bin`.
    WhisperModel(String),
}

impl Destination {
    pub fn path(&self, layout: &Layout) -> PathBuf {
        match self {
            Self::RuntimeLibrary(file) => layout.runtime_dir().join(file),
            Self::KokoroModel => layout.kokoro_model(),
            Self::KokoroVoice(voice) => layout.kokoro_voice(voice),
            Self::PiperModel(voice) => layout.piper_voice(voice).onnx,
            Self::PiperConfig(voice) => layout.piper_voice(voice).config,
            Self::WhisperModel(variant) => layout.whisper_model(variant),
        }
    }
}

/// A file inside a downloaded archive that is what actually gets installed (ONNX Runtime's
/// library inside its wheel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extract {
    /// The member's path inside the archive.
    pub member: String,
    pub size: u64,
    pub sha256: String,
}

/// One file as it is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFile {
    /// The file's name under a mirror (`voices/af_heart.bin`): with `models.mirror = M` it is
    /// fetched from `M/<name>`.
    pub name: String,
    /// Where it is published.
    pub url: String,
    /// Size and sha256 of the published file.
    pub size: u64,
    pub sha256: String,
    /// When set, the published file is an archive and only this member is installed.
    pub extract: Option<Extract>,
    pub destination: Destination,
}

impl ModelFile {
    /// Where it is fetched from: the mirror when one is configured, else the official URL.
    pub fn source_url(&self, mirror: Option<&str>) -> String {
        match mirror
            .map(|m| m.trim_end_matches('/'))
            .filter(|m| !m.is_empty())
        {
            Some(m) => format!("{m}/{}", self.name),
            None => self.url.clone(),
        }
    }

    /// Size of what ends up installed (the extracted member for an archive).
    pub fn installed_size(&self) -> u64 {
        self.extract.as_ref().map_or(self.size, |e| e.size)
    }

    /// sha256 of what ends up installed.
    pub fn installed_sha256(&self) -> &str {
        self.extract
            .as_ref()
            .map_or(self.sha256.as_str(), |e| e.sha256.as_str())
    }
}

/// One installable model: `runtime`, `kokoro`, `piper:<voice>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub name: String,
    pub kind: ModelKind,
    /// BCP 47-style tags (`en-US`, `zh-CN`, `ja`).
    pub languages: Vec<String>,
    /// SPDX identifier of the licence the files are published under.
    pub license: String,
    /// Whether that licence allows commercial use.
    pub commercial_use: bool,
    /// Piper's quality level (`low`, `medium`, `high`); `None` for the others.
    pub quality: Option<String>,
    pub files: Vec<ModelFile>,
}

impl ModelEntry {
    /// Bytes the model takes on disk once installed.
    pub fn size_bytes(&self) -> u64 {
        self.files.iter().map(ModelFile::installed_size).sum()
    }

    /// Bytes a pull downloads when nothing is installed yet.
    pub fn download_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Debug)]
pub struct Manifest {
    entries: Vec<ModelEntry>,
}

impl Manifest {
    /// The manifest compiled into this binary.
    pub fn builtin() -> &'static Manifest {
        static BUILTIN: LazyLock<Manifest> = LazyLock::new(|| {
            let mut entries = vec![runtime(), kokoro(), piper(&JOE_MEDIUM)];
            entries.extend(WHISPER_MODELS.iter().map(whisper));
            Manifest { entries }
        });
        &BUILTIN
    }

    pub fn new(entries: Vec<ModelEntry>) -> Self {
        Self { entries }
    }

    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Every model name, in manifest order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }
}

/// The ONNX Runtime release the neural voices are built and tested against.
pub const ONNXRUNTIME_VERSION: &str = "1.32.0";

struct Wheel {
    url: &'static str,
    size: u64,
    sha256: &'static str,
    library_size: u64,
    library_sha256: &'static str,
}

#[cfg(not(target_arch = "aarch64"))]
const RUNTIME_WHEEL: Wheel = Wheel {
    url: "https://files.pythonhosted.org/packages/1d/46/e6f356c9539d2eed44126de3421a81e217da2ad91b22dc11b379cb1e384f/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    size: 27_773_237,
    sha256: "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d",
    library_size: 34_824_680,
    library_sha256: "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
};

#[cfg(target_arch = "aarch64")]
const RUNTIME_WHEEL: Wheel = Wheel {
    url: "https://files.pythonhosted.org/packages/b7/30/103820b32e9dc1d1fcfc5b519fd2de5bd699d25a25895caf5d726350d1b5/onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl",
    size: 23_195_070,
    sha256: "2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c",
    library_size: 27_165_936,
    library_sha256: "49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a",
};

fn runtime() -> ModelEntry {
    let library = format!("libonnxruntime.so.{ONNXRUNTIME_VERSION}");
    let wheel_name = RUNTIME_WHEEL
        .url
        .rsplit('/')
        .next()
        .expect("a URL has a last segment");
    ModelEntry {
        name: "runtime".into(),
        kind: ModelKind::Runtime,
        languages: Vec::new(),
        license: "MIT".into(),
        commercial_use: true,
        quality: None,
        files: vec![ModelFile {
            name: wheel_name.into(),
            url: RUNTIME_WHEEL.url.into(),
            size: RUNTIME_WHEEL.size,
            sha256: RUNTIME_WHEEL.sha256.into(),
            extract: Some(Extract {
                member: format!("onnxruntime/capi/{library}"),
                size: RUNTIME_WHEEL.library_size,
                sha256: RUNTIME_WHEEL.library_sha256.into(),
            }),
            destination: Destination::RuntimeLibrary(library),
        }],
    }
}

const KOKORO_MODEL_URL: &str = "https://github.com/thewh1teagle/kokoro-onnx/releases/download/model-files-v1.0/kokoro-v1.0.int8.onnx";
const KOKORO_MODEL_SIZE: u64 = 92_361_271;
const KOKORO_MODEL_SHA256: &str =
    "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb";
const KOKORO_VOICES_URL: &str =
    "https://huggingface.co/onnx-community/Kokoro-82M-v1.0-ONNX/resolve/main/voices";
/// Every Kokoro v1.0 voice file is one 510×1×256 float32 style table.
pub const KOKORO_VOICE_SIZE: u64 = 522_240;

/// The 54 Kokoro-82M v1.0 voices and the sha256 of each `.bin`.
pub const KOKORO_VOICES: [(&str, &str); 54] = [
    (
        "af_alloy",
        "c4a6b876047fd7fb472edf4ebd63cfac7c3b958a7cae7c106e8f038ca6308c45",
    ),
    (
        "af_aoede",
        "4a004c33430762e2461eedb2013fad808ef4ab3121f5300f554476caf58d8361",
    ),
    (
        "af_bella",
        "f69d836209b78eb8c66e75e3cda491e26ea838a3674257e9d4e5703cbaf55c8b",
    ),
    (
        "af_heart",
        "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    ),
    (
        "af_jessica",
        "a240a5e3c15b43563d6e923bdca8ef5613a23471d9b77653694012435df23bd8",
    ),
    (
        "af_kore",
        "9be5221b6a941c04b561959b8ff0b06e809444dcc4ab7e75a7b23606f691819e",
    ),
    (
        "af_nicole",
        "cd2191ab31b914ed7b318416b0e4440fdf392ddad9106a060819aa600a64f59a",
    ),
    (
        "af_nova",
        "18778272caa0d0eebaea251c35fd635f038434f9eee5e691d02a174bd328414f",
    ),
    (
        "af_river",
        "00a2bcf82b1d86e8f19902ede58c65ccf6c0e43b44b7d74fad54e5d8933c9c30",
    ),
    (
        "af_sarah",
        "4409fbc125afabacc615d94db5398d847006a737b0247d6892b7a9a0007a2f0a",
    ),
    (
        "af_sky",
        "4435255c9744f3f31659e0d714ab7689bf65d9e77ec1cce060f083912614f0b9",
    ),
    (
        "am_adam",
        "162b035ed91cfc48b6046982184c645f72edcdd1b82843347f605d7bf7b15716",
    ),
    (
        "am_echo",
        "3968b92c3c4cd1c4416dbded36c13eaa388a90d5788d02a13e4d781f5f8cf3c3",
    ),
    (
        "am_eric",
        "e8b5be17edd1e3636901ce7598baafe2dc8dd8ff707a0c23bf9e461add7e2832",
    ),
    (
        "am_fenrir",
        "c27989f741f7ee34d273a39d8a595cc0837d35f5ced9a29b7cc162614616df43",
    ),
    (
        "am_liam",
        "52403be32fd047c6a44517cb0bcd6b134f2a18baa73e70ef41651e0eab921ade",
    ),
    (
        "am_michael",
        "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    ),
    (
        "am_onyx",
        "da5d135b424164916d75a68ffb4c2abce3d7d5ccc82dd1ee6cf447ce286145e6",
    ),
    (
        "am_puck",
        "fcf73c989033e9233e0b98713eca600c8c74dcc1614b37009d5450ff4a2274a0",
    ),
    (
        "am_santa",
        "61150cf726ab6c5ed7a99f90a304f91f5a72c00c592e89ec94e5df11c319227a",
    ),
    (
        "bf_alice",
        "08afa6ba24da61ea5e8efa139e5aadc938d83f0a6da5a900adaf763ac1da5573",
    ),
    (
        "bf_emma",
        "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
    ),
    (
        "bf_isabella",
        "3754352c4aaa46d17f27654ab7518d65b62ad6163a0f55a5f4330c2da2c4e94f",
    ),
    (
        "bf_lily",
        "5e0ee32ebe64a467124976b14e69590746f1c4ce41a12b587a50c862edfea335",
    ),
    (
        "bm_daniel",
        "6b3194bbceffb746733cbc22c8f593dd44e401a71d53895a2dca891bc595a1e8",
    ),
    (
        "bm_fable",
        "f889083196807b4adb15e9204252165f503b8d33d3982e681c52443c49d798f1",
    ),
    (
        "bm_george",
        "c4b235a4c1f2cd3b939fed08b899ce9385638b763f7b73a59616c4fc9bd6c9bc",
    ),
    (
        "bm_lewis",
        "b8f671cef828c30e66fdf0b0756a76bba58f6bb3398cbbf27058642acbcedb97",
    ),
    (
        "ef_dora",
        "f66ec66bd295acb18372e37008533a9a3228483ccd294e7538d5d9294ac9a532",
    ),
    (
        "em_alex",
        "27809e9eafdcbcfff90a3016c697568676531de2a2c39cee29c96c7bd6b83e95",
    ),
    (
        "em_santa",
        "ad43b774e1ca24d05c6161297d8aeb770ac3d29bb95daf516727af5f7d543683",
    ),
    (
        "ff_siwis",
        "a35f5675ad08948e326ae75fd0ea16ba5d0042e4f76b5f3d1df77d0a48c54861",
    ),
    (
        "hf_alpha",
        "040be6a4425411cc01fda5fd06693c76bfa78572632852bc8cda9c99232ffb56",
    ),
    (
        "hf_beta",
        "cd83ae0bb9b2e4e4fb92b4973bd8d1822ca0036d3c498bf4fc89aa8e33917cc7",
    ),
    (
        "hm_omega",
        "b02d9222d9ed00ce26b302173a862c2c93f96cc40b5c422b8d14910b9ff34137",
    ),
    (
        "hm_psi",
        "644daf88ba8aeb7bd08950bbdcd4453bb280864e49dc4df93fabc6be32e03f37",
    ),
    (
        "if_sara",
        "409b69248798fcdc2542330c76953d230710f19b057e59cb82fdc3c4cf71265c",
    ),
    (
        "im_nicola",
        "bc578e510d52a96d6940d46f12e96d7b3df00905dbea075113226d100e6e1ab0",
    ),
    (
        "jf_alpha",
        "56b479360aad9f367aeb8cef908f9201cf48b4555e488c5f4590c9dfcd978bb6",
    ),
    (
        "jf_gongitsune",
        "0f1181f3772d27b7c12aaf4bcd71e31b186c4146e330d074a3dc64ee392af396",
    ),
    (
        "jf_nezumi",
        "13cb71eebb0b48739d444558322aa35a8c9a489b80e1e631f14d2e6aea93026b",
    ),
    (
        "jf_tebukuro",
        "29c6c0561b4288d59639677bebe7533c919743d5ea68d0d2ae992644beea6696",
    ),
    (
        "jm_kumo",
        "09e959d239724c734d65661f06f14cdabcddfd476bfaaad905a937099ae9e64f",
    ),
    (
        "pf_dora",
        "3da7b5b2d91847ebf5646f57631af6ececae3c29a89cd300f06edf9aa6cfe9ee",
    ),
    (
        "pm_alex",
        "0175c753f59c54e7fd5a995bedef0c5ff2fb67e0043dd3dcb2ae74ec2acbeb2a",
    ),
    (
        "pm_santa",
        "8b012db3185778afe2e45a62cbad69db73021774fe68dda634bcc748a982eede",
    ),
    (
        "zf_xiaobei",
        "5dde6e1c9c4f12c8b327bc29c0cee361a23b52b952c04636858ba637ec66e640",
    ),
    (
        "zf_xiaoni",
        "08892b62a39af0a615cd0581238db7e19e44c578e8fa0bfd0e586e93327d9cba",
    ),
    (
        "zf_xiaoxiao",
        "03adb5d5e3ddd88b047954e974e651cb0a4b524c985057e5d872e962c7be1169",
    ),
    (
        "zf_xiaoyi",
        "bc1555c5c486099196ac254bae5e0bb543c121952a3092f50b7d8724f1bc36b3",
    ),
    (
        "zm_yunjian",
        "de48a00bdbf3649f07162269a2b6e0513604389bfac8a2e6c75cb34b323ad6fa",
    ),
    (
        "zm_yunxi",
        "7243892fb4e560d47014090ddf010f8b8b790f3c6b029ff82b2ac06aa4e27c8b",
    ),
    (
        "zm_yunxia",
        "6b2b8fc15b3df19a368daebe5c581c7fabf433ee5b8a17ffd6b3d723cff8936d",
    ),
    (
        "zm_yunyang",
        "261e2c89470534dbbcb8fd98b8fdc495ec94063d9bb6c8277f7be43cccba3f42",
    ),
];

fn kokoro() -> ModelEntry {
    let mut files = vec![ModelFile {
        name: KOKORO_MODEL_FILE.into(),
        url: KOKORO_MODEL_URL.into(),
        size: KOKORO_MODEL_SIZE,
        sha256: KOKORO_MODEL_SHA256.into(),
        extract: None,
        destination: Destination::KokoroModel,
    }];
    files.extend(KOKORO_VOICES.iter().map(|(voice, sha256)| ModelFile {
        name: format!("voices/{voice}.bin"),
        url: format!("{KOKORO_VOICES_URL}/{voice}.bin"),
        size: KOKORO_VOICE_SIZE,
        sha256: (*sha256).into(),
        extract: None,
        destination: Destination::KokoroVoice((*voice).into()),
    }));
    ModelEntry {
        name: "kokoro".into(),
        kind: ModelKind::Kokoro,
        languages: [
            "en-US", "en-GB", "zh-CN", "ja", "es", "fr", "hi", "it", "pt-BR",
        ]
        .map(String::from)
        .to_vec(),
        license: "Apache-2.0".into(),
        commercial_use: true,
        quality: None,
        files,
    }
}

/// A Piper voice as published in `rhasspy/piper-voices`.
struct PiperVoice {
    /// `en_US-joe-medium`.
    name: &'static str,
    /// The folder it is published in, below the release.
    path: &'static str,
    language: &'static str,
    quality: &'static str,
    /// From the voice's MODEL_CARD.
    license: &'static str,
    commercial_use: bool,
    onnx_size: u64,
    onnx_sha256: &'static str,
    json_size: u64,
    json_sha256: &'static str,
}

const PIPER_VOICES_URL: &str = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0";

const JOE_MEDIUM: PiperVoice = PiperVoice {
    name: "en_US-joe-medium",
    path: "en/en_US/joe/medium",
    language: "en-US",
    quality: "medium",
    license: "CC0-1.0",
    commercial_use: true,
    onnx_size: 63_201_294,
    onnx_sha256: "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    json_size: 4_794,
    json_sha256: "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
};

fn piper(v: &PiperVoice) -> ModelEntry {
    let base = format!("{PIPER_VOICES_URL}/{}/{}", v.path, v.name);
    ModelEntry {
        name: format!("piper:{}", v.name),
        kind: ModelKind::Piper,
        languages: vec![v.language.into()],
        license: v.license.into(),
        commercial_use: v.commercial_use,
        quality: Some(v.quality.into()),
        files: vec![
            ModelFile {
                name: format!("{}.onnx", v.name),
                url: format!("{base}.onnx"),
                size: v.onnx_size,
                sha256: v.onnx_sha256.into(),
                extract: None,
                destination: Destination::PiperModel(v.name.into()),
            },
            ModelFile {
                name: format!("{}.onnx.json", v.name),
                url: format!("{base}.onnx.json"),
                size: v.json_size,
                sha256: v.json_sha256.into(),
                extract: None,
                destination: Destination::PiperConfig(v.name.into()),
            },
        ],
    }
}

/// A Whisper model as whisper.cpp publishes it: `ggml-<variant>.bin` at the root of
/// `ggerganov/whisper.cpp` on Hugging Face. Sizes and sha256 are the files' Git LFS object
/// ids there.
struct WhisperModel {
    /// `base`, `base.en`, `small-q5_1`.
    variant: &'static str,
    size: u64,
    sha256: &'static str,
}

const WHISPER_URL: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// The sizes a CPU transcribes in real time or better, each in f16 and quantized to q5_1 and
/// q8_0; the `.en` models are English only.
const WHISPER_MODELS: [WhisperModel; 18] = [
    WhisperModel {
        variant: "tiny",
        size: 77_691_713,
        sha256: "be07e048e1e599ad46341c8d2a135645097a538221678b7acdd1b1919c6e1b21",
    },
    WhisperModel {
        variant: "tiny-q5_1",
        size: 32_152_673,
        sha256: "818710568da3ca15689e31a743197b520007872ff9576237bda97bd1b469c3d7",
    },
    WhisperModel {
        variant: "tiny-q8_0",
        size: 43_537_433,
        sha256: "c2085835d3f50733e2ff6e4b41ae8a2b8d8110461e18821b09a15c40c42d1cca",
    },
    WhisperModel {
        variant: "tiny.en",
        size: 77_704_715,
        sha256: "921e4cf8686fdd993dcd081a5da5b6c365bfde1162e72b08d75ac75289920b1f",
    },
    WhisperModel {
        variant: "tiny.en-q5_1",
        size: 32_166_155,
        sha256: "c77c5766f1cef09b6b7d47f21b546cbddd4157886b3b5d6d4f709e91e66c7c2b",
    },
    WhisperModel {
        variant: "tiny.en-q8_0",
        size: 43_550_795,
        sha256: "5bc2b3860aa151a4c6e7bb095e1fcce7cf12c7b020ca08dcec0c6d018bb7dd94",
    },
    WhisperModel {
        variant: "base",
        size: 147_951_465,
        sha256: "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe",
    },
    WhisperModel {
        variant: "base-q5_1",
        size: 59_707_625,
        sha256: "422f1ae452ade6f30a004d7e5c6a43195e4433bc370bf23fac9cc591f01a8898",
    },
    WhisperModel {
        variant: "base-q8_0",
        size: 81_768_585,
        sha256: "c577b9a86e7e048a0b7eada054f4dd79a56bbfa911fbdacf900ac5b567cbb7d9",
    },
    WhisperModel {
        variant: "base.en",
        size: 147_964_211,
        sha256: "a03779c86df3323075f5e796cb2ce5029f00ec8869eee3fdfb897afe36c6d002",
    },
    WhisperModel {
        variant: "base.en-q5_1",
        size: 59_721_011,
        sha256: "4baf70dd0d7c4247ba2b81fafd9c01005ac77c2f9ef064e00dcf195d0e2fdd2f",
    },
    WhisperModel {
        variant: "base.en-q8_0",
        size: 81_781_811,
        sha256: "a4d4a0768075e13cfd7e19df3ae2dbc4a68d37d36a7dad45e8410c9a34f8c87e",
    },
    WhisperModel {
        variant: "small",
        size: 487_601_967,
        sha256: "1be3a9b2063867b937e64e2ec7483364a79917e157fa98c5d94b5c1fffea987b",
    },
    WhisperModel {
        variant: "small-q5_1",
        size: 190_085_487,
        sha256: "ae85e4a935d7a567bd102fe55afc16bb595bdb618e11b2fc7591bc08120411bb",
    },
    WhisperModel {
        variant: "small-q8_0",
        size: 264_464_607,
        sha256: "49c8fb02b65e6049d5fa6c04f81f53b867b5ec9540406812c643f177317f779f",
    },
    WhisperModel {
        variant: "small.en",
        size: 487_614_201,
        sha256: "c6138d6d58ecc8322097e0f987c32f1be8bb0a18532a3f88f734d1bbf9c41e5d",
    },
    WhisperModel {
        variant: "small.en-q5_1",
        size: 190_098_681,
        sha256: "bfdff4894dcb76bbf647d56263ea2a96645423f1669176f4844a1bf8e478ad30",
    },
    WhisperModel {
        variant: "small.en-q8_0",
        size: 264_477_561,
        sha256: "67a179f608ea6114bd3fdb9060e762b588a3fb3bd00c4387971be4d177958067",
    },
];

/// The manifest's name of an official Whisper model: `whisper:<variant>`.
pub fn whisper_name(variant: &str) -> String {
    format!("whisper:{variant}")
}

/// The BCP 47 tag for "many languages", which the multilingual Whisper models speak (99).
pub const MULTILINGUAL: &str = "mul";

fn whisper(m: &WhisperModel) -> ModelEntry {
    let file = format!("ggml-{}.bin", m.variant);
    let english_only = m
        .variant
        .split('-')
        .next()
        .is_some_and(|s| s.ends_with(".en"));
    ModelEntry {
        name: whisper_name(m.variant),
        kind: ModelKind::Whisper,
        languages: vec![if english_only { "en" } else { MULTILINGUAL }.into()],
        license: "MIT".into(),
        commercial_use: true,
        quality: None,
        files: vec![ModelFile {
            url: format!("{WHISPER_URL}/{file}"),
            name: file,
            size: m.size,
            sha256: m.sha256.into(),
            extract: None,
            destination: Destination::WhisperModel(m.variant.into()),
        }],
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn is_sha256(s: &str) -> bool {
        s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn names_are_unique_and_every_hash_is_a_sha256() {
        let m = Manifest::builtin();
        let names: HashSet<&str> = m.names().into_iter().collect();
        assert_eq!(names.len(), m.entries().len());
        let mut official = HashSet::new();
        let mut destinations = HashSet::new();
        for e in m.entries() {
            assert!(!e.files.is_empty(), "{} has no files", e.name);
            assert!(!e.license.is_empty());
            for f in &e.files {
                assert!(is_sha256(&f.sha256), "{}: {}", f.name, f.sha256);
                assert!(is_sha256(f.installed_sha256()), "{}", f.name);
                assert!(f.size > 0 && f.installed_size() > 0);
                assert!(f.url.starts_with("https://"), "{}", f.url);
                assert!(official.insert(f.name.clone()), "{} twice", f.name);
                assert!(
                    destinations.insert(f.destination.clone()),
                    "{:?} twice",
                    f.destination
                );
            }
        }
    }

    #[test]
    fn kokoro_has_its_model_and_all_54_voices() {
        let k = Manifest::builtin().get("kokoro").unwrap();
        assert_eq!(k.kind, ModelKind::Kokoro);
        assert_eq!(k.files.len(), 55);
        let voices: HashSet<&str> = KOKORO_VOICES.iter().map(|(v, _)| *v).collect();
        assert_eq!(voices.len(), 54);
        for v in [
            "af_heart",
            "am_michael",
            "bf_emma",
            "zf_xiaobei",
            "jf_alpha",
            "ff_siwis",
        ] {
            assert!(voices.contains(v), "{v}");
            assert!(k.files.iter().any(|f| f.name == format!("voices/{v}.bin")));
        }
        assert_eq!(k.size_bytes(), 92_361_271 + 54 * 522_240);
        assert!(k.commercial_use);
        assert_eq!(k.license, "Apache-2.0");
    }

    #[test]
    fn the_runtime_installs_the_library_from_its_wheel() {
        let r = Manifest::builtin().get("runtime").unwrap();
        let f = &r.files[0];
        assert!(f.name.ends_with(".whl") && f.url.ends_with(&f.name));
        let extract = f.extract.as_ref().unwrap();
        assert_eq!(extract.member, "onnxruntime/capi/libonnxruntime.so.1.32.0");
        let layout = Layout::new("/m");
        assert_eq!(
            f.destination.path(&layout),
            PathBuf::from("/m/runtime/libonnxruntime.so.1.32.0")
        );
        assert_eq!(r.size_bytes(), extract.size);
    }

    #[test]
    fn a_mirror_replaces_the_origin_with_the_official_name() {
        let k = Manifest::builtin().get("kokoro").unwrap();
        let heart = k
            .files
            .iter()
            .find(|f| f.name == "voices/af_heart.bin")
            .unwrap();
        assert_eq!(
            heart.source_url(None),
            "https://huggingface.co/onnx-community/Kokoro-82M-v1.0-ONNX/resolve/main/voices/af_heart.bin"
        );
        assert_eq!(
            heart.source_url(Some("http://m.lan/models/")),
            "http://m.lan/models/voices/af_heart.bin"
        );
        let joe = Manifest::builtin().get("piper:en_US-joe-medium").unwrap();
        assert_eq!(joe.quality.as_deref(), Some("medium"));
        assert_eq!(
            joe.files[0].source_url(None),
            "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/en/en_US/joe/medium/en_US-joe-medium.onnx"
        );
    }

    #[test]
    fn a_non_commercial_voice_is_marked() {
        const NC: PiperVoice = PiperVoice {
            name: "en_GB-example-low",
            path: "en/en_GB/example/low",
            language: "en-GB",
            quality: "low",
            license: "CC-BY-NC-SA-4.0",
            commercial_use: false,
            onnx_size: 1,
            onnx_sha256: "00",
            json_size: 1,
            json_sha256: "00",
        };
        let m = Manifest::new(vec![piper(&JOE_MEDIUM), piper(&NC)]);
        let nc = m.get("piper:en_GB-example-low").unwrap();
        assert!(!nc.commercial_use);
        assert_eq!(nc.license, "CC-BY-NC-SA-4.0");
        assert_eq!(nc.quality.as_deref(), Some("low"));
        assert!(m.get("piper:en_US-joe-medium").unwrap().commercial_use);
    }

    #[test]
    fn whisper_models_come_in_three_sizes_each_in_f16_q5_1_and_q8_0() {
        let m = Manifest::builtin();
        let whisper: Vec<&ModelEntry> = m
            .entries()
            .iter()
            .filter(|e| e.kind == ModelKind::Whisper)
            .collect();
        assert_eq!(whisper.len(), 18);
        // Exactly the names the config accepts for the first-run pull.
        let official: HashSet<String> = crate::config::OFFICIAL_WHISPER_MODELS
            .iter()
            .map(|v| whisper_name(v))
            .collect();
        let listed: HashSet<String> = whisper.iter().map(|e| e.name.clone()).collect();
        assert_eq!(official, listed);
        let layout = Layout::new("/m");
        for size in ["tiny", "base", "small"] {
            for lang in ["", ".en"] {
                for quant in ["", "-q5_1", "-q8_0"] {
                    let variant = format!("{size}{lang}{quant}");
                    let e = m
                        .get(&whisper_name(&variant))
                        .unwrap_or_else(|| panic!("{variant} missing"));
                    let [f] = e.files.as_slice() else {
                        panic!("{variant}: one file")
                    };
                    assert_eq!(f.name, format!("ggml-{variant}.bin"));
                    assert_eq!(
                        f.source_url(None),
                        format!(
                            "https://huggingface.co/ggerganov/whisper.cpp/resolve/main/ggml-{variant}.bin"
                        )
                    );
                    assert_eq!(
                        f.destination.path(&layout),
                        PathBuf::from(format!("/m/whisper/ggml-{variant}.bin"))
                    );
                    assert!(
                        f.destination
                            .path(&layout)
                            .starts_with(layout.whisper_dir())
                    );
                    let expected_language = if lang.is_empty() { MULTILINGUAL } else { "en" };
                    assert_eq!(e.languages, [expected_language], "{variant}");
                    assert_eq!(e.license, "MIT");
                    assert!(e.commercial_use);
                    // f16 sizes in MB: tiny 75-80, base 145-150, small 480-490; q8_0 a bit over
                    // half of f16, q5_1 a bit under half.
                    let f16: u64 = match size {
                        "tiny" => 77_700_000,
                        "base" => 147_960_000,
                        _ => 487_610_000,
                    };
                    let (low, high) = match quant {
                        "" => (f16 - 100_000, f16 + 100_000),
                        "-q8_0" => (f16 / 2, f16 * 6 / 10),
                        _ => (f16 * 35 / 100, f16 * 45 / 100),
                    };
                    assert!((low..high).contains(&f.size), "{variant}: {}", f.size);
                }
            }
        }
        let base = m.get("whisper:base").unwrap();
        assert_eq!(base.size_bytes(), 147_951_465);
        assert_eq!(
            base.files[0].sha256,
            "60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe"
        );
        // Every Whisper model file has its own hash.
        let hashes: HashSet<&str> = whisper.iter().map(|e| e.files[0].sha256.as_str()).collect();
        assert_eq!(hashes.len(), 18);
    }
}
