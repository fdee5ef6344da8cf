//! Text token embedding: out[b, l] = table[ids[b, l]] + pos[l].

mod cpu;
mod gpu;

use crate::batch_sum::batch_sum;
use reclip_autograd::{Op, Var};
use reclip_core::ops::check_same;
use reclip_core::{DeviceOp, Error, GpuDevice, Indices, Real, Result, Tensor};

const OP: &str = "token_embed";

/// The shapes of a token embedding, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenShape {
    pub batch: usize,
    pub len: usize,
    pub vocab: usize,
    /// Rows of the positional table (the context length, at least `len`).
    pub ctx: usize,
    pub dim: usize,
}

impl TokenShape {
    /// The shapes of embedding `ids` [B, L] (checked against the table's
    /// vocabulary, for its device) from `table` [V, D] with `positional_embedding` [ctx, D].
    pub fn new(ids: &Indices, table: &Tensor, positional_embedding: &Tensor) -> Result<Self> {
        check_same(OP, &[table, positional_embedding])?;
        if !table.dtype().is_float() {
            return Err(Error::DType { op: OP, got: table.dtype(), expected: "f32, bf16 or f64" });
        }
        let &[batch, len] = ids.dims() else {
            return Err(Error::invalid(OP, format!("token ids must be [B, L], got shape {}", ids.shape())));
        };
        let &[vocab, dim] = table.dims() else {
            return Err(Error::invalid(OP, format!("the token table must be [V, D], got shape {}", table.shape())));
        };
        ids.check_for(OP, vocab, table.device())?;
        match positional_embedding.dims() {
            &[ctx, d] if d == dim && ctx >= len => Ok(TokenShape { batch, len, vocab, ctx, dim }),
            _ => Err(Error::invalid(
                OP,
                format!(
                    "the positional embedding must be [ctx, {dim}] with ctx ≥ the sequence length {len}, got shape {}",
                    positional_embedding.shape()
                ),
            )),
        }
    }
}

/// The forward on one device.
struct Forward<'a> {
    ids: &'a Indices,
    table: &'a Tensor,
    positional_embedding: &'a Tensor,
    shape: TokenShape,
}

impl DeviceOp for Forward<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let s = &self.shape;
        let out = cpu::forward::<T>(
            self.ids.host(),
            &self.table.cpu_real::<T>(OP)?,
            &self.positional_embedding.cpu_real::<T>(OP)?,
            s.len.max(1),
            s.dim,
        );
        Ok(Tensor::from_real(out, [s.batch, s.len, s.dim], self.table.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::forward(device, self.ids, self.table, self.positional_embedding, self.shape.len)
    }
}

/// [B, L, D] embeddings of `ids` [B, L] from `table` [V, D], plus the first L
/// rows of `positional_embedding`.
pub fn token_embed_forward(ids: &Indices, table: &Tensor, positional_embedding: &Tensor) -> Result<Tensor> {
    let shape = TokenShape::new(ids, table, positional_embedding)?;
    Forward { ids, table, positional_embedding, shape }.run(table)
}

/// The table's gradient on one device.
struct TableBackward<'a> {
    grad: &'a Tensor,
    ids: &'a Indices,
    shape: TokenShape,
}

impl DeviceOp for TableBackward<'_> {
    type Output = Tensor;
    const NAME: &'static str = OP;

    fn cpu<T: Real>(self) -> Result<Tensor> {
        let s = &self.shape;
        let g = self.grad.cpu_real::<T>(OP)?;
        let d = cpu::table_backward::<T>(&g, self.ids.host(), s.vocab, s.dim);
        Ok(Tensor::from_real(d, [s.vocab, s.dim], self.grad.dtype()))
    }

    fn gpu(self, device: &GpuDevice) -> Result<Tensor> {
        gpu::table_backward(device, self.grad, self.ids)
    }
}

/// Gradients of the table [V, D] and of the positional embedding [ctx, D]
/// (rows L.. zero) from `grad` [B, L, D]; `needs` = [table, positional].
/// `ids` are the forward's.
pub fn token_embed_backward(
    grad: &Tensor,
    ids: &Indices,
    shape: &TokenShape,
    needs: [bool; 2],
) -> Result<[Option<Tensor>; 2]> {
    let expected = [shape.batch, shape.len, shape.dim];
    if grad.dims() != expected || ids.dims() != [shape.batch, shape.len] {
        return Err(Error::invalid(
            OP,
            format!(
                "the gradient must be {expected:?} for ids of shape [{}, {}], got shape {} and ids {}",
                shape.batch,
                shape.len,
                grad.shape(),
                ids.shape()
            ),
        ));
    }
    ids.check_for(OP, shape.vocab, grad.device())?;
    let table = if needs[0] { Some(TableBackward { grad, ids, shape: *shape }.run(grad)?) } else { None };
    let pos = if needs[1] { Some(batch_sum(grad, shape.ctx, false)?.0) } else { None };
    Ok([table, pos])
}

/// The token-embedding node: inputs table, positional embedding; the ids are
/// a setting, as they take no gradient.
struct TokenEmbed {
    ids: Indices,
}

impl Op<2> for TokenEmbed {
    const NAME: &'static str = OP;
    type Saved = TokenShape;

    fn forward(&self, [table, positional_embedding]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, TokenShape)> {
        // The shapes are checked once here and carried to the backward.
        let shape = TokenShape::new(&self.ids, table, positional_embedding)?;
        Ok((Forward { ids: &self.ids, table, positional_embedding, shape }.run(table)?, shape))
    }

    fn backward(self, shape: TokenShape, grad: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        token_embed_backward(grad, &self.ids, &shape, needs)
    }
}

/// Embeddings of `ids` [B, L] (checked for the table's vocabulary and
/// device) from `table` [V, D], plus the first L rows of
/// `positional_embedding` [ctx, D]: [B, L, D]. The backward sums each token's
/// gradients in position order, through the grouping the ids carry, so the
/// table's gradient is deterministic and nothing is transferred.
pub fn token_embed(ids: &Indices, table: &Var, positional_embedding: &Var) -> Result<Var> {
    TokenEmbed { ids: ids.clone() }.apply([table, positional_embedding])
}
