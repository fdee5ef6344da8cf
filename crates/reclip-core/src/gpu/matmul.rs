use super::device_of;
use crate::ops::matmul::{MatmulShape, batch_offsets};
use crate::{GemmCall, GemmEpilogue, GemmOperand, Result, Tensor};

/// An operand as GEMM reads it: one of its two matrix dimensions must have
/// unit stride, and its batch entries must sit a constant stride apart.
/// Views that are neither are copied to contiguous memory first.
fn operand(t: &Tensor, ms: &MatmulShape, rows: usize, cols: usize) -> Result<(Tensor, GemmOperand)> {
    let fits = |t: &Tensor| -> Option<GemmOperand> {
        let r = t.rank();
        let (rs, cs) = (t.layout().strides()[r - 2], t.layout().strides()[r - 1]);
        // Strides of size-1 dimensions are meaningless; others must not overlap.
        let untransposed = (cs == 1 || cols == 1) && (rows == 1 || rs >= cols);
        let transposed = (rs == 1 || rows == 1) && (cols == 1 || cs >= rows);
        let (transposed, ld) = if untransposed {
            (false, if rows == 1 { cols } else { rs })
        } else if transposed {
            (true, if cols == 1 { rows } else { cs })
        } else {
            return None;
        };
        let offsets = batch_offsets(t.layout(), &ms.batch);
        let base = t.layout().offset();
        let stride = if offsets.len() > 1 { offsets[1].checked_sub(offsets[0])? } else { 0 };
        let uniform = offsets.iter().enumerate().all(|(i, &o)| o == offsets[0] + i * stride);
        (uniform && offsets[0] == base).then_some(GemmOperand { ptr: 0, transposed, ld, batch_stride: stride })
    };
    let t = match fits(t) {
        Some(_) => t.clone(),
        None => {
            let mut dims = ms.batch.dims().to_vec();
            dims.extend([rows, cols]);
            t.broadcast_as(dims)?.contiguous()?
        }
    };
    let mut op = fits(&t).expect("a contiguous operand always fits");
    op.ptr = t.gpu_ptr()?;
    Ok((t, op))
}

pub fn matmul(a: &Tensor, b: &Tensor, ms: &MatmulShape) -> Result<Tensor> {
    let out = Tensor::empty(ms.out_dims(), a.dtype(), a.device())?;
    let batch = ms.batch.elem_count();
    if batch * ms.m * ms.n == 0 {
        return Ok(out);
    }
    if ms.k == 0 {
        return Tensor::zeros(ms.out_dims(), a.dtype(), a.device());
    }
    // The operand tensors are kept alive until the call is queued.
    let (_a, ga) = operand(a, ms, ms.m, ms.k)?;
    let (_b, gb) = operand(b, ms, ms.k, ms.n)?;
    device_of(a)?.gemm(&GemmCall {
        dtype: a.dtype(),
        m: ms.m,
        n: ms.n,
        k: ms.k,
        batch,
        alpha: 1.0,
        beta: 0.0,
        a: ga,
        b: gb,
        c: out.gpu_ptr()?,
        ldc: ms.n,
        c_batch_stride: ms.m * ms.n,
        epilogue: GemmEpilogue::None,
    })?;
    Ok(out)
}
