//! The burn backends an encoder can run on, chosen at run time among those compiled in
//! (cargo features `cpu`, `tch`, `wgpu`).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::{Error, Result};

/// A compute backend. Every variant exists in every build; [`Backend::is_compiled`] says
/// whether this build can run it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// burn's pure-Rust `flex` CPU backend (SIMD, multi-threaded); feature `cpu`, default.
    Cpu,
    /// LibTorch through burn-tch; feature `tch`, needs libtorch at build and run time.
    Tch,
    /// burn-wgpu on the first Vulkan/Metal/DX12 adapter (Mesa lavapipe on a CPU-only box);
    /// feature `wgpu`.
    Wgpu,
}

impl Backend {
    /// `Ok` when this build includes the backend; else the error of a `backend` param set
    /// to it, naming the param and the cargo feature to build with.
    pub fn check_compiled(self) -> std::result::Result<(), String> {
        if self.is_compiled() {
            return Ok(());
        }
        Err(format!(
            "param backend: `{self}` is not compiled in; build with cargo feature `{self}`: \
             `cargo run --release -p xtask --features {self} -- run FILE`"
        ))
    }

    /// All backends, compiled in or not.
    pub const ALL: [Backend; 3] = [Backend::Cpu, Backend::Tch, Backend::Wgpu];

    /// The parameter spelling: `cpu`, `tch` or `wgpu`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Tch => "tch",
            Backend::Wgpu => "wgpu",
        }
    }

    /// Whether this build of the crate includes the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Cpu => cfg!(feature = "cpu"),
            Backend::Tch => cfg!(feature = "tch"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
        }
    }

    /// The backends compiled into this build, the default one first.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// The burn device of this backend, or an error naming the cargo feature to enable.
    pub fn device(self) -> Result<Device> {
        match self {
            #[cfg(feature = "cpu")]
            Backend::Cpu => {
                tune_malloc_once();
                Ok(Device::flex())
            }
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            // burn-tch is deprecated upstream but still the libtorch route
            // LibTorch's first CUDA device when libtorch sees one, else its CPU device.
            Backend::Tch => Ok(Device::enumerate(burn::tensor::DeviceType::LibTorch)
                .into_iter()
                .next()
                .unwrap_or_else(Device::libtorch)),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[allow(unreachable_patterns)]
            other => Err(Error::Invalid(format!(
                "backend `{other}` is not compiled in: rebuild rrra-encoder with cargo feature `{other}` (compiled: {})",
                Self::compiled()
                    .iter()
                    .map(|b| b.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

impl Default for Backend {
    /// The first compiled backend: `cpu` in a default build.
    fn default() -> Self {
        Self::compiled()[0]
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    /// Parses `cpu`, `tch` or `wgpu`; a backend not compiled in is an error naming its feature.
    fn from_str(s: &str) -> Result<Self> {
        let backend = Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| Error::Invalid(format!("unknown backend `{s}` (cpu, tch, wgpu)")))?;
        if !backend.is_compiled() {
            return Err(Error::Invalid(format!(
                "backend `{s}` is not compiled in: rebuild rrra-encoder with cargo feature `{s}`"
            )));
        }
        Ok(backend)
    }
}

/// Keeps the CPU backend's large activations off fresh `mmap`s (glibc only; once per
/// process, on first use of the `cpu` device, unless `RRRA_MALLOC_TUNE=0`).
///
/// glibc serves every allocation over its mmap threshold (at most 32 MiB) with a fresh
/// `mmap` and unmaps it on free, so each of a BERT layer's 10-50 MB activations costs a
/// page fault per 4 KiB page (1.5 M faults for 96 documents at 32 × 256, 15% of the CPU
/// time in the kernel). With mmap disabled and the trim threshold at 1 GiB, freed
/// activations stay in the heap and the next batch reuses them. The cost: up to 1 GiB
/// of freed heap is kept rather than returned to the system.
fn tune_malloc_once() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var("RRRA_MALLOC_TUNE").is_ok_and(|v| v == "0") {
                return;
            }
            // SAFETY: `mallopt` only changes allocator parameters; glibc takes its lock.
            unsafe {
                libc::mallopt(libc::M_MMAP_MAX, 0);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compiled_and_rejects_others() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>().is_ok(), b.is_compiled());
            assert_eq!(b.device().is_ok(), b.is_compiled());
        }
        assert!("gpu".parse::<Backend>().is_err());
        assert!(Backend::default().is_compiled());
        for b in Backend::ALL {
            match b.check_compiled() {
                Ok(()) => assert!(b.is_compiled()),
                Err(e) => assert!(
                    e.contains("param backend") && e.contains(&format!("--features {b}")),
                    "{e}"
                ),
            }
        }
    }
}
