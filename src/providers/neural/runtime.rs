//! ONNX Runtime, loaded from a library file at run time (never linked, never fetched at build
//! time). Where from, in order: `models.onnxruntime`, the library `aimake models pull runtime`
//! installed under `models.dir`, then the system's `libonnxruntime.so`.
//!
//! A process can load one ONNX Runtime library: the first that loads stays. A failed attempt
//! (missing file, not a library, too old) leaves nothing behind, so a later attempt — after
//! `aimake models pull runtime`, say — can still succeed without a restart.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::models::Layout;

/// What the operator runs to get a runtime.
pub const PULL_RUNTIME: &str = "aimake models pull runtime";

/// The library the system's loader finds by name when nothing else is configured or installed.
const SYSTEM_LIBRARY: &str = "libonnxruntime.so";

/// Why neural voices cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime is not installed: run `{PULL_RUNTIME}` (or set models.onnxruntime to a libonnxruntime.so) to enable neural voices"
    )]
    Missing,
    #[error(
        "ONNX Runtime at {path} cannot be used: {reason}. Run `{PULL_RUNTIME}` for a known-good version, or point models.onnxruntime at another library"
    )]
    Unusable { path: String, reason: String },
}

/// The loaded environment, shared by every model; `None` until a load succeeds.
static LOADED: Mutex<Option<Loaded>> = Mutex::new(None);

/// The last library that failed to load and why, so status pages can say it without retrying.
static FAILED: Mutex<Option<(PathBuf, RuntimeError)>> = Mutex::new(None);

#[derive(Clone)]
struct Loaded {
    env: ort::environment::Environment,
    path: PathBuf,
    version: String,
}

/// Finds and loads ONNX Runtime for the neural providers.
#[derive(Debug, Clone)]
pub struct Runtime {
    configured: Option<PathBuf>,
    layout: Layout,
}

impl Runtime {
    pub fn new(configured: Option<PathBuf>, layout: Layout) -> Self {
        Self { configured, layout }
    }

    /// The library this process would load now (or has loaded), and whether it exists.
    fn candidate(&self) -> Option<PathBuf> {
        if let Some(p) = &self.configured {
            return Some(p.clone());
        }
        if let Some(p) = self.layout.runtime_library() {
            return Some(p);
        }
        system_library()
    }

    /// The loaded environment, loading the library first if needed. Blocking (dlopen): call it
    /// from a blocking thread.
    pub fn environment(&self) -> Result<ort::environment::Environment, RuntimeError> {
        let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = loaded.as_ref() {
            return Ok(l.env.clone());
        }
        let path = self.candidate().ok_or(RuntimeError::Missing)?;
        if !path.exists() && path.is_absolute() {
            return Err(if self.configured.is_some() {
                RuntimeError::Unusable {
                    path: path.display().to_string(),
                    reason: "the file does not exist".into(),
                }
            } else {
                RuntimeError::Missing
            });
        }
        let unusable = |reason: String| RuntimeError::Unusable {
            path: path.display().to_string(),
            reason,
        };
        let remember = |e: RuntimeError| {
            tracing::warn!(path = %path.display(), error = %e, "ONNX Runtime cannot be loaded");
            *FAILED.lock().unwrap_or_else(|e| e.into_inner()) = Some((path.clone(), e.clone()));
            e
        };
        let builder = ort::init_from(&path).map_err(|e| remember(unusable(load_reason(&e))))?;
        let env = builder
            .with_name("aimake")
            .with_telemetry(false)
            .build()
            .map_err(|e| remember(unusable(e.to_string())))?;
        *FAILED.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let version = library_version(&path).unwrap_or_else(|| "unknown".into());
        tracing::info!(path = %path.display(), %version, "ONNX Runtime loaded");
        *loaded = Some(Loaded {
            env: env.clone(),
            path,
            version,
        });
        Ok(env)
    }

    /// Whether neural voices can run, without loading anything: for status pages, which must
    /// stay cheap. A library that exists but failed to load is reported from that attempt.
    pub fn status(&self) -> Result<String, RuntimeError> {
        if let Some(l) = LOADED.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return Ok(format!("ONNX Runtime {} ({})", l.version, l.path.display()));
        }
        let candidate = self.candidate();
        if let Some((path, e)) = FAILED.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && candidate.as_ref() == Some(path)
        {
            return Err(e.clone());
        }
        match candidate {
            Some(p) if p.exists() => {
                Ok(format!("ONNX Runtime at {} (not loaded yet)", p.display()))
            }
            Some(p) if self.configured.is_some() => Err(RuntimeError::Unusable {
                path: p.display().to_string(),
                reason: "the file does not exist".into(),
            }),
            _ => Err(RuntimeError::Missing),
        }
    }
}

/// With no model loaded, asks the kernel to take back the runtime library's read-only pages
/// (its code, about 25 MB): they stay in the page cache and fault back in when the next model
/// loads. Writable and relocated pages are left alone; nothing is lost, this is only a reclaim
/// hint (`MADV_PAGEOUT`, Linux 5.4 and newer; older kernels ignore it). Returns the bytes of
/// mappings advised.
pub(crate) fn page_out_library() -> usize {
    let Some(path) = LOADED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|l| l.path.clone())
    else {
        return 0;
    };
    #[cfg(target_os = "linux")]
    {
        let real = std::fs::canonicalize(&path).unwrap_or(path);
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return 0;
        };
        let mut advised = 0;
        for (start, end) in read_only_mappings(&maps, &real) {
            // SAFETY: the range is a whole mapping of this process, read from /proc/self/maps;
            // MADV_PAGEOUT never changes its contents, so no reference into it is affected.
            let ok = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT)
            } == 0;
            if ok {
                advised += end - start;
            }
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        0
    }
}

/// The address ranges of `/proc/self/maps` lines that map `library` without write permission.
fn read_only_mappings(maps: &str, library: &Path) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            // offset, device, inode, then the path (which may hold spaces).
            let path = line.splitn(6, char::is_whitespace).nth(5)?.trim_start();
            if perms.contains('w') || Path::new(path) != library {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

/// ort's load errors, in the words an operator needs.
fn load_reason(e: &ort::LoadDynamicError) -> String {
    match e {
        ort::LoadDynamicError::Dlopen { error, .. } => {
            format!("it is not a loadable shared library ({error})")
        }
        ort::LoadDynamicError::MissingApi { .. } => {
            "it is not an ONNX Runtime library (no OrtGetApiBase)".into()
        }
        ort::LoadDynamicError::InvalidVersionString => "it reports no readable version".into(),
        ort::LoadDynamicError::BadVersion { version_str, .. } => format!(
            "it is version {version_str}, and aimake needs 1.{} or newer",
            ort::MINOR_VERSION
        ),
    }
}

/// The version a loaded ONNX Runtime library reports (`OrtGetApiBase()->GetVersionString()`).
fn library_version(path: &Path) -> Option<String> {
    #[repr(C)]
    struct ApiBase {
        get_api: unsafe extern "C" fn(u32) -> *const std::ffi::c_void,
        get_version_string: unsafe extern "C" fn() -> *const std::ffi::c_char,
    }
    // SAFETY: the library is ONNX Runtime, already loaded and checked by `ort` (this only adds
    // a reference); `OrtGetApiBase` returns a pointer to a static struct of this layout, and
    // the version string is static and NUL-terminated.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = get_base();
        if base.is_null() {
            return None;
        }
        let version = ((*base).get_version_string)();
        (!version.is_null()).then(|| {
            std::ffi::CStr::from_ptr(version)
                .to_string_lossy()
                .into_owned()
        })
    }
}

/// The system's library, when the loader's usual directories have one.
fn system_library() -> Option<PathBuf> {
    const DIRS: &[&str] = &[
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib64",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
    ];
    DIRS.iter()
        .map(|d| Path::new(d).join(SYSTEM_LIBRARY))
        .find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_installed_means_missing_with_the_command_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(None, Layout::new(dir.path()));
        if system_library().is_none() && LOADED.lock().unwrap().is_none() {
            let e = rt.status().unwrap_err();
            assert_eq!(e, RuntimeError::Missing);
            assert!(e.to_string().contains("aimake models pull runtime"), "{e}");
        }
    }

    #[test]
    fn only_read_only_mappings_of_the_library_are_paged_out() {
        let maps = "\
7f0000000000-7f0000100000 r--p 00000000 fd:01 42 /opt/models/runtime/libonnxruntime.so.1.32.0
7f0000100000-7f0001900000 r-xp 00100000 fd:01 42 /opt/models/runtime/libonnxruntime.so.1.32.0
7f0001900000-7f0001a00000 rw-p 01900000 fd:01 42 /opt/models/runtime/libonnxruntime.so.1.32.0
7f0002000000-7f0002100000 r-xp 00000000 fd:01 43 /usr/lib/x86_64-linux-gnu/libc.so.6
7f0003000000-7f0003100000 rw-p 00000000 00:00 0
7f0004000000-7f0004001000 r-xp 00000000 fd:01 44 /opt/models/runtime/libonnxruntime.so.1.32.0 (deleted)
";
        let lib = Path::new("/opt/models/runtime/libonnxruntime.so.1.32.0");
        assert_eq!(
            read_only_mappings(maps, lib),
            vec![
                (0x7f0000000000, 0x7f0000100000),
                (0x7f0000100000, 0x7f0001900000)
            ]
        );
        assert!(read_only_mappings(maps, Path::new("/elsewhere/lib.so")).is_empty());
    }

    #[test]
    fn a_configured_library_that_does_not_exist_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let rt = Runtime::new(Some(dir.path().join("nope.so")), Layout::new(dir.path()));
        if LOADED.lock().unwrap().is_none() {
            let e = rt.status().unwrap_err();
            assert!(e.to_string().contains("nope.so"), "{e}");
            assert!(e.to_string().contains("does not exist"), "{e}");
        }
    }
}
