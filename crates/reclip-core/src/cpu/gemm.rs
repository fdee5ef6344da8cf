//! Matrix products on the host through the `gemm` crate, which takes arbitrary
//! row and column strides, so transposed views need no copy.

use crate::{DType, Error, GemmCall, GemmEpilogue, GemmOperand, Real, Result};
use gemm::Parallelism;
use half::bf16;

/// A matrix in host memory: element (i, j) at `ptr + i*rs + j*cs`.
#[derive(Clone, Copy)]
pub struct HostMatrix<T> {
    pub ptr: *const T,
    pub rs: isize,
    pub cs: isize,
}

/// `dst = scale * lhs · rhs (+ dst if accumulate)`, lhs m×k, rhs k×n.
///
/// # Safety
/// Every pointer must be valid for the elements its strides address; `dst`
/// must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_strided<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: isize,
    dst_cs: isize,
    lhs: HostMatrix<T>,
    rhs: HostMatrix<T>,
    scale: T,
    accumulate: bool,
    parallel: bool,
) {
    let parallelism = if parallel { Parallelism::Rayon(0) } else { Parallelism::None };
    // SAFETY: forwarded from the caller; gemm computes dst = a*dst + b*lhs*rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            T::one(),
            scale,
            false,
            false,
            false,
            parallelism,
        )
    }
}

fn operand_strides(op: &GemmOperand) -> (isize, isize) {
    if op.transposed { (1, op.ld as isize) } else { (op.ld as isize, 1) }
}

/// Element `i` of a host array of `dtype` (f32 or bf16), in f32.
///
/// # Safety
/// `ptr + i` must be a valid element of that type.
unsafe fn load(ptr: u64, dtype: DType, i: isize) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe {
        match dtype {
            DType::BF16 => (*(ptr as *const bf16).offset(i)).to_f32(),
            _ => *(ptr as *const f32).offset(i),
        }
    }
}

/// Writes `v`, rounded to `dtype` (f32 or bf16), to element `i` of a host array.
///
/// # Safety
/// `ptr + i` must be a valid, writable element of that type.
unsafe fn store(ptr: u64, dtype: DType, i: usize, v: f32) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match dtype {
            DType::BF16 => *(ptr as *mut bf16).add(i) = bf16::from_f32(v),
            _ => *(ptr as *mut f32).add(i) = v,
        }
    }
}

/// Runs a [`GemmCall`] whose pointers are host addresses, as the emulator's
/// GEMM does. bf16 operands are widened to f32 and the result rounded back.
/// The epilogues are cuBLASLt's: the bias is added in f32 before the result
/// is rounded; the bias gradient is summed in f32, over p in order.
///
/// # Safety
/// The call's pointers must be host addresses valid for every element the
/// call's shapes and strides address.
pub unsafe fn gemm_host(call: &GemmCall) -> Result<()> {
    let GemmCall { m, n, k, batch, dtype, .. } = *call;
    if !matches!(dtype, DType::F32 | DType::BF16) {
        return Err(Error::DType { op: "gemm", got: dtype, expected: "f32 or bf16" });
    }
    call.check_epilogue()?;
    let (a_rs, a_cs) = operand_strides(&call.a);
    let (b_rs, b_cs) = operand_strides(&call.b);
    let bias: Option<Vec<f32>> = match call.epilogue {
        // SAFETY: the caller guarantees the bias covers n elements.
        GemmEpilogue::Bias { bias } => Some((0..n).map(|j| unsafe { load(bias, dtype, j as isize) }).collect()),
        _ => None,
    };
    for bi in 0..batch {
        let a_off = bi * call.a.batch_stride;
        let b_off = bi * call.b.batch_stride;
        let c_off = bi * call.c_batch_stride;
        if dtype == DType::F32 {
            let c = (call.c as *mut f32).wrapping_add(c_off);
            if call.beta == 0.0 {
                for i in 0..m {
                    for j in 0..n {
                        // SAFETY: the caller guarantees C covers m×n at ldc.
                        unsafe { *c.add(i * call.ldc + j) = 0.0 };
                    }
                }
            } else if call.beta != 1.0 {
                for i in 0..m {
                    for j in 0..n {
                        // SAFETY: as above.
                        unsafe { *c.add(i * call.ldc + j) *= call.beta };
                    }
                }
            }
            let a = HostMatrix { ptr: (call.a.ptr as *const f32).wrapping_add(a_off), rs: a_rs, cs: a_cs };
            let b = HostMatrix { ptr: (call.b.ptr as *const f32).wrapping_add(b_off), rs: b_rs, cs: b_cs };
            // SAFETY: the caller guarantees the operands' extents.
            unsafe { gemm_strided(m, n, k, c, call.ldc as isize, 1, a, b, call.alpha, true, true) };
            if let Some(bias) = &bias {
                for i in 0..m {
                    for (j, &bj) in bias.iter().enumerate() {
                        // SAFETY: as above.
                        unsafe { *c.add(i * call.ldc + j) += bj };
                    }
                }
            }
        } else {
            let widen = |ptr: u64, off: usize, rs: isize, cs: isize, rows: usize, cols: usize| {
                let base = (ptr as *const bf16).wrapping_add(off);
                let mut v = Vec::with_capacity(rows * cols);
                for i in 0..rows {
                    for j in 0..cols {
                        // SAFETY: the caller guarantees the operand's extent.
                        v.push(unsafe { *base.offset(i as isize * rs + j as isize * cs) }.to_f32());
                    }
                }
                v
            };
            let a = widen(call.a.ptr, a_off, a_rs, a_cs, m, k);
            let b = widen(call.b.ptr, b_off, b_rs, b_cs, k, n);
            let mut c = if call.beta == 0.0 {
                vec![0.0f32; m * n]
            } else {
                let mut c = widen(call.c, c_off, call.ldc as isize, 1, m, n);
                c.iter_mut().for_each(|v| *v *= call.beta);
                c
            };
            let am = HostMatrix { ptr: a.as_ptr(), rs: k as isize, cs: 1 };
            let bm = HostMatrix { ptr: b.as_ptr(), rs: n as isize, cs: 1 };
            // SAFETY: a, b and c are local buffers of the right sizes.
            unsafe { gemm_strided(m, n, k, c.as_mut_ptr(), n as isize, 1, am, bm, call.alpha, true, true) };
            if let Some(bias) = &bias {
                c.chunks_mut(n.max(1)).for_each(|row| row.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
            }
            let out = (call.c as *mut bf16).wrapping_add(c_off);
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: the caller guarantees C covers m×n at ldc.
                    unsafe { *out.add(i * call.ldc + j) = bf16::from_f32(c[i * n + j]) };
                }
            }
        }
    }
    if let GemmEpilogue::BiasGrad { out } = call.epilogue {
        for i in 0..m {
            let mut sum = 0.0f32;
            for p in 0..k {
                // SAFETY: the caller guarantees A's extent.
                sum += unsafe { load(call.a.ptr, dtype, i as isize * a_rs + p as isize * a_cs) };
            }
            // SAFETY: the caller guarantees the output covers m elements.
            unsafe { store(out, dtype, i, sum) };
        }
    }
    Ok(())
}
