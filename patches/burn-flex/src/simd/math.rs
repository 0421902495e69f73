//! Branch-free `f32` approximations of `erf` and `exp`, and the kernels built on them:
//! GELU, its derivative and the row softmax of attention.
//!
//! The approximations use only adds, multiplies, one division, min/max and integer bit
//! operations, so the loops that call them auto-vectorise. With the `simd` feature each
//! kernel is dispatched through `macerator` to the widest instruction set the CPU has
//! (AVX-512, AVX2, NEON, ...), which is what lets the compiler use wide registers for
//! code written as scalar Rust. Large inputs are split across rayon threads.
//!
//! Accuracy (checked by the tests below against `libm`): `erf` within 5e-7 absolute,
//! `exp` within 3 ulp relative over `[-87, 88]`.

#[cfg(feature = "rayon")]
use rayon::prelude::*;

/// Elements per rayon task. GELU costs ~25 flops per element, so a task of this size
/// amortises scheduling many times over.
#[cfg(feature = "rayon")]
const CHUNK: usize = 16 * 1024;

/// Below this many elements the kernels run on the calling thread.
#[cfg(feature = "rayon")]
const PARALLEL_THRESHOLD: usize = 2 * CHUNK;

/// `erf(x)` as a rational function `x·P(x²)/Q(x²)` on `[-4, 4]` (outside, `erf` rounds
/// to ±1 in `f32`); the coefficients are Eigen's `generic_fast_erf_float`. Max absolute
/// error ~7e-8 in exact arithmetic, a few ulp more in `f32`.
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_258_013_06e-10_f32;
    p = p * x2 + 2.770_681_424_959_02e-08;
    p = p * x2 - 2.101_024_020_825_08e-06;
    p = p * x2 - 5.692_506_394_623_46e-05;
    p = p * x2 - 7.349_906_303_268_55e-04;
    p = p * x2 - 2.954_599_808_540_25e-03;
    p = p * x2 - 1.609_603_332_624_15e-02;
    let mut q = -1.456_607_184_649_96e-05_f32;
    q = q * x2 - 2.133_740_552_789_05e-04;
    q = q * x2 - 1.682_826_974_382_03e-03;
    q = q * x2 - 7.373_329_167_204_68e-03;
    q = q * x2 - 1.426_473_905_141_89e-02;
    x * p / q
}

/// `exp(x)` by range reduction `x = n·ln2 + r`, `|r| <= ln2/2`, a degree-6 polynomial for
/// `exp(r)` (Cephes `expf`) and `2^n` built in the exponent bits. Inputs below -87
/// (including `-inf`) give 0, inputs above 88 are clamped (`exp(88)` ≈ 1.65e38).
#[inline(always)]
#[allow(clippy::excessive_precision)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // Adding 1.5·2^23 rounds to the nearest integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_375;
    const LN2_LO: f32 = -2.121_944_40e-4;
    let underflow = x < -87.0;
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let n_int = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut y = 1.987_569_150_0e-4_f32;
    y = y * r + 1.398_199_950_7e-3;
    y = y * r + 8.333_451_907_3e-3;
    y = y * r + 4.166_579_589_4e-2;
    y = y * r + 1.666_666_545_9e-1;
    y = y * r + 5.000_000_120_1e-1;
    y = y * r * r + r + 1.0;
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    if underflow { 0.0 } else { y * scale }
}

/// `0.5·x·(1 + erf(x/√2))`.
#[inline(always)]
fn gelu_one(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// `d/dx gelu(x) · g = (Φ(x) + x·φ(x)) · g`.
#[inline(always)]
fn gelu_grad_one(x: f32, g: f32) -> f32 {
    // 1/√(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf_f32(x * core::f32::consts::FRAC_1_SQRT_2));
    let pdf = INV_SQRT_2PI * exp_f32(-0.5 * x * x);
    g * (cdf + x * pdf)
}

/// Declares `$name(args)` that runs the loop `$body` under the best SIMD target features
/// (`simd` feature) or plainly (without it).
macro_rules! dispatched {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        #[cfg(feature = "simd")]
        $(#[$attr])*
        // `S` only selects the target features the body is compiled with.
        #[allow(clippy::extra_unused_type_parameters)]
        #[macerator::with_simd]
        fn $name<S: macerator::Simd>($($arg: $ty),*) $body

        #[cfg(not(feature = "simd"))]
        $(#[$attr])*
        fn $name($($arg: $ty),*) $body
    };
}

dispatched! {
    fn gelu_inplace_seq(data: &mut [f32]) {
        for x in data.iter_mut() {
            *x = gelu_one(*x);
        }
    }
}

dispatched! {
    fn gelu_map_seq(src: &[f32], dst: &mut [f32]) {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = gelu_one(x);
        }
    }
}

dispatched! {
    fn gelu_grad_inplace_seq(x: &[f32], grad: &mut [f32]) {
        for (g, &x) in grad.iter_mut().zip(x) {
            *g = gelu_grad_one(x, *g);
        }
    }
}

/// GELU (erf form) of every element, in place; multi-threaded on large inputs.
pub fn gelu_inplace_f32(data: &mut [f32]) {
    #[cfg(feature = "rayon")]
    if data.len() >= PARALLEL_THRESHOLD {
        data.par_chunks_mut(CHUNK).for_each(gelu_inplace_seq);
        return;
    }
    gelu_inplace_seq(data);
}

/// `dst[i] = gelu(src[i])`; multi-threaded on large inputs.
pub fn gelu_f32(src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "gelu_f32: length mismatch");
    #[cfg(feature = "rayon")]
    if src.len() >= PARALLEL_THRESHOLD {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(|(d, s)| gelu_map_seq(s, d));
        return;
    }
    gelu_map_seq(src, dst);
}

/// `grad[i] *= gelu'(x[i])`, in place on `grad`; multi-threaded on large inputs.
pub fn gelu_backward_inplace_f32(x: &[f32], grad: &mut [f32]) {
    assert_eq!(x.len(), grad.len(), "gelu_backward_f32: length mismatch");
    #[cfg(feature = "rayon")]
    if x.len() >= PARALLEL_THRESHOLD {
        grad.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(g, x)| gelu_grad_inplace_seq(x, g));
        return;
    }
    gelu_grad_inplace_seq(x, grad);
}

dispatched! {
    /// Row softmax of a `[rows, row_len]` score tile, in place: each score is scaled,
    /// set to `-inf` where `mask` is non-zero, offset by `bias`, then normalised. A row
    /// whose every score is `-inf` becomes all zeros. `mask` and `bias`, when non-empty,
    /// have the tile's length; an empty `mask` or `bias` means none.
    fn softmax_rows_seq(scores: &mut [f32], row_len: usize, scale: f32, mask: &[u8], bias: &[f32]) {
        let mask = (!mask.is_empty()).then_some(mask);
        let bias = (!bias.is_empty()).then_some(bias);
        for (r, row) in scores.chunks_exact_mut(row_len).enumerate() {
            let span = r * row_len..(r + 1) * row_len;
            for s in row.iter_mut() {
                *s *= scale;
            }
            if let Some(m) = mask {
                for (s, &m) in row.iter_mut().zip(&m[span.clone()]) {
                    *s = if m != 0 { f32::NEG_INFINITY } else { *s };
                }
            }
            if let Some(b) = bias {
                for (s, &b) in row.iter_mut().zip(&b[span]) {
                    *s += b;
                }
            }
            let max = row_max(row);
            if max == f32::NEG_INFINITY {
                row.fill(0.0);
                continue;
            }
            // `exp` in a loop of its own, so that it vectorises at the full register width;
            // the sum then runs over eight lanes in a fixed order (`lane_sum`).
            for v in row.iter_mut() {
                *v = exp_f32(*v - max);
            }
            let sum = lane_sum(row);
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// The largest element of `row` (`-inf` for an empty row), over sixteen running maxima so
/// that the reduction stays in vector registers. Order-independent, so exact.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// The sum of `row` as eight interleaved partial sums (lane `j` adds elements `8i + j`),
/// then the lanes in order, then the remainder: a fixed order, so the same bits on every
/// instruction set.
#[inline(always)]
fn lane_sum(row: &[f32]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (acc, &v) in sums.iter_mut().zip(c) {
            *acc += v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for &v in chunks.remainder() {
        sum += v;
    }
    sum
}

/// Row softmax of a `[rows, row_len]` tile (see `softmax_rows_seq`), on the calling
/// thread: attention calls it once per (batch, head) from its own parallel loop.
pub fn softmax_rows_f32(
    scores: &mut [f32],
    row_len: usize,
    scale: f32,
    mask: Option<&[u8]>,
    bias: Option<&[f32]>,
) {
    if row_len == 0 {
        return;
    }
    softmax_rows_seq(
        scores,
        row_len,
        scale,
        mask.unwrap_or_default(),
        bias.unwrap_or_default(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
        (0..=n)
            .map(|i| lo + (hi - lo) * i as f32 / n as f32)
            .collect()
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0.0f64;
        for x in grid(-8.0, 8.0, 400_000) {
            let err = (f64::from(erf_f32(x)) - libm::erf(f64::from(x))).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "max |erf error| {worst:e}");
        assert_eq!(erf_f32(0.0), 0.0);
        assert_eq!(erf_f32(10.0), 1.0);
        assert_eq!(erf_f32(-10.0), -1.0);
    }

    #[test]
    fn exp_matches_libm() {
        let mut worst = 0.0f64;
        for x in grid(-87.0, 88.0, 400_000) {
            let exact = libm::exp(f64::from(x));
            let rel = (f64::from(exp_f32(x)) - exact).abs() / exact;
            worst = worst.max(rel);
        }
        assert!(
            worst < 3.0 * f64::from(f32::EPSILON),
            "max rel error {worst:e}"
        );
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
    }

    fn gelu_ref(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / core::f64::consts::SQRT_2))
    }

    #[test]
    fn gelu_kernels_match_reference_on_every_path() {
        // Long enough for the parallel path, with an odd tail for the scalar remainder.
        let xs = grid(-9.0, 9.0, 200_001);
        let mut inplace = xs.clone();
        gelu_inplace_f32(&mut inplace);
        let mut mapped = alloc::vec![0.0; xs.len()];
        gelu_f32(&xs, &mut mapped);
        let mut short = xs[..37].to_vec();
        gelu_inplace_f32(&mut short);
        for (i, &x) in xs.iter().enumerate() {
            let want = gelu_ref(f64::from(x));
            let tol = 1e-6 * (1.0 + want.abs());
            assert!((f64::from(inplace[i]) - want).abs() < tol, "x={x}");
            assert_eq!(inplace[i].to_bits(), mapped[i].to_bits(), "x={x}");
            if i < short.len() {
                assert_eq!(inplace[i].to_bits(), short[i].to_bits(), "x={x}");
            }
        }
    }

    #[test]
    fn gelu_backward_matches_reference() {
        let xs = grid(-9.0, 9.0, 100_003);
        let mut grad: Vec<f32> = xs.iter().map(|&x| 0.5 - x * 0.1).collect();
        let g0 = grad.clone();
        gelu_backward_inplace_f32(&xs, &mut grad);
        for i in 0..xs.len() {
            let x = f64::from(xs[i]);
            let d = 0.5 * (1.0 + libm::erf(x / core::f64::consts::SQRT_2))
                + x * (-0.5 * x * x).exp() / (2.0 * core::f64::consts::PI).sqrt();
            let want = d * f64::from(g0[i]);
            assert!(
                (f64::from(grad[i]) - want).abs() < 2e-6 * (1.0 + want.abs()),
                "x={x}: {} vs {want}",
                grad[i]
            );
        }
    }

    #[test]
    fn softmax_rows_matches_reference() {
        let (rows, len) = (5, 19);
        let scores: Vec<f32> = (0..rows * len)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.7)
            .collect();
        let mask: Vec<u8> = (0..rows * len)
            .map(|i| u8::from(i % 7 == 3 || i / len == 4))
            .collect();
        let bias: Vec<f32> = (0..rows * len).map(|i| (i % 5) as f32 * -0.25).collect();
        let scale = 0.125;
        let mut got = scores.clone();
        softmax_rows_f32(&mut got, len, scale, Some(&mask), Some(&bias));
        for r in 0..rows {
            let row = r * len..(r + 1) * len;
            let logits: Vec<f64> = row
                .clone()
                .map(|i| {
                    if mask[i] != 0 {
                        f64::NEG_INFINITY
                    } else {
                        f64::from(scores[i]) * scale as f64 + f64::from(bias[i])
                    }
                })
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
            for (j, i) in row.enumerate() {
                let want = if max == f64::NEG_INFINITY {
                    0.0
                } else {
                    (logits[j] - max).exp() / sum
                };
                assert!((f64::from(got[i]) - want).abs() < 1e-6, "row {r} col {j}");
            }
        }
        // Row 4 is fully masked.
        assert!(got[4 * len..].iter().all(|&v| v == 0.0));
    }
}
