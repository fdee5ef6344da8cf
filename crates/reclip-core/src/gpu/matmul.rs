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
    if ms.batch.elem_count() * ms.m * ms.n == 0 {
        return Ok(out);
    }
    if ms.k == 0 {
        return Tensor::zeros(ms.out_dims(), a.dtype(), a.device());
    }
    product(a, b, ms, out, GemmEpilogue::None)
}

/// The product of two matrices `a` [m, k] and `b` [k, n] (views read in
/// place, as by [`matmul`]) with `epilogue` fused into its GEMM. The product
/// must not be empty: an epilogue has nothing to ride on otherwise.
pub fn matmul_epilogue(a: &Tensor, b: &Tensor, epilogue: GemmEpilogue) -> Result<Tensor> {
    let ms = MatmulShape::new(a.shape(), b.shape())?;
    if a.rank() != 2 || b.rank() != 2 || ms.m * ms.n * ms.k == 0 {
        return Err(crate::Error::invalid(
            "gemm",
            format!(
                "the {} epilogue needs a non-empty product of two matrices, got {} · {}",
                epilogue.name(),
                a.shape(),
                b.shape()
            ),
        ));
    }
    let out = Tensor::empty(ms.out_dims(), a.dtype(), a.device())?;
    product(a, b, &ms, out, epilogue)
}

/// `out` = a·b with `epilogue`, for a non-empty product.
fn product(a: &Tensor, b: &Tensor, ms: &MatmulShape, out: Tensor, epilogue: GemmEpilogue) -> Result<Tensor> {
    // The operand tensors are kept alive until the call is queued.
    let (_a, ga) = operand(a, ms, ms.m, ms.k)?;
    let (_b, gb) = operand(b, ms, ms.k, ms.n)?;
    device_of(a)?.gemm(&GemmCall {
        dtype: a.dtype(),
        m: ms.m,
        n: ms.n,
        k: ms.k,
        batch: ms.batch.elem_count(),
        alpha: 1.0,
        beta: 0.0,
        a: ga,
        b: gb,
        c: out.gpu_ptr()?,
        ldc: ms.n,
        c_batch_stride: ms.m * ms.n,
        epilogue,
    })?;
    Ok(out)
}
