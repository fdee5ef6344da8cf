//! Text token embedding: out[b, l] = table[ids[b, l]] + pos[l].

use crate::{cpu, gpu, reduce};
use reclip_core::ops::check_same;
use reclip_core::{Device, Error, Indices, Result, Tensor, with_real};

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

/// [B, L, D] embeddings of `ids` [B, L] from `table` [V, D], plus the first L
/// rows of `positional_embedding`.
pub fn token_embed_forward(ids: &Indices, table: &Tensor, positional_embedding: &Tensor) -> Result<Tensor> {
    let s = TokenShape::new(ids, table, positional_embedding)?;
    match table.device() {
        Device::Cpu => with_real!(table.dtype(), OP, T => {
            let out = cpu::token_embed_forward::<T>(
                ids.host(),
                &table.cpu_real::<T>(OP)?,
                &positional_embedding.cpu_real::<T>(OP)?,
                s.len.max(1),
                s.dim,
            );
            Ok(Tensor::from_real(out, [s.batch, s.len, s.dim], table.dtype()))
        }),
        Device::Gpu(_) => gpu::token_embed_forward(ids, table, positional_embedding, s.len),
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
    let table = if needs[0] {
        Some(match grad.device() {
            Device::Cpu => with_real!(grad.dtype(), OP, T => {
                let g = grad.cpu_real::<T>(OP)?;
                let d = cpu::token_table_backward::<T>(&g, ids.host(), shape.vocab, shape.dim);
                Ok(Tensor::from_real(d, [shape.vocab, shape.dim], grad.dtype()))
            })?,
            Device::Gpu(_) => gpu::token_table_backward(grad, ids)?,
        })
    } else {
        None
    };
    let pos = if needs[1] { Some(reduce::batch_sum(grad, shape.ctx, false)?.0) } else { None };
    Ok([table, pos])
}
