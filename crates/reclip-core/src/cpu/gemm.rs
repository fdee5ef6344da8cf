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
/// GEMM does. Operands are widened to f32, the product is formed in f32 and
/// the epilogue applied to it before the result is rounded to the dtype, as
/// cuBLASLt's are: the bias added in f32; GELU applied to the f32
/// pre-activation, which is saved rounded; GELU's gradient taken at the
/// saved (rounded) pre-activation and summed for the bias gradient in f32,
/// over the rows in order; the bias gradient of BiasGrad summed over p in
/// order.
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
    // SAFETY (for every load and store below): the caller guarantees each
    // pointer covers the elements the call's shapes and strides address.
    let widen = |ptr: u64, off: usize, rs: isize, cs: isize, rows: usize, cols: usize| -> Vec<f32> {
        let mut v = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            for j in 0..cols {
                v.push(unsafe { load(ptr, dtype, off as isize + i as isize * rs + j as isize * cs) });
            }
        }
        v
    };
    let bias = match call.epilogue {
        GemmEpilogue::Bias { bias } | GemmEpilogue::GeluAuxBias { bias, .. } => Some(widen(bias, 0, 0, 1, 1, n)),
        _ => None,
    };
    for bi in 0..batch {
        let c_off = bi * call.c_batch_stride;
        let a = widen(call.a.ptr, bi * call.a.batch_stride, a_rs, a_cs, m, k);
        let b = widen(call.b.ptr, bi * call.b.batch_stride, b_rs, b_cs, k, n);
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
        match call.epilogue {
            GemmEpilogue::GeluAuxBias { aux, ld_aux, .. } => {
                for (i, row) in c.chunks_mut(n.max(1)).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        unsafe { store(aux, dtype, i * ld_aux + j, *v) };
                        *v = super::gelu_tanh::gelu_tanh(*v);
                    }
                }
            }
            GemmEpilogue::DGeluBiasGrad { aux, ld_aux, out } => {
                let mut sums = vec![0.0f32; n];
                for (i, row) in c.chunks_mut(n.max(1)).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        let u = unsafe { load(aux, dtype, (i * ld_aux + j) as isize) };
                        *v *= super::gelu_tanh::gelu_tanh_derivative(u);
                        sums[j] += *v;
                    }
                }
                sums.iter().enumerate().for_each(|(j, &s)| unsafe { store(out, dtype, j, s) });
            }
            _ => {}
        }
        for i in 0..m {
            for j in 0..n {
                unsafe { store(call.c, dtype, c_off + i * call.ldc + j, c[i * n + j]) };
            }
        }
    }
    if let GemmEpilogue::BiasGrad { out } = call.epilogue {
        for i in 0..m {
            let mut sum = 0.0f32;
            for p in 0..k {
                sum += unsafe { load(call.a.ptr, dtype, i as isize * a_rs + p as isize * a_cs) };
            }
            unsafe { store(out, dtype, i, sum) };
        }
    }
    Ok(())
}
