//! A whole attention block (in-projection, attention, out-projection) on the
//! CPU against an independent, plainly written f64 evaluation of
//! `nn.MultiheadAttention` self-attention.

use reclip_attention::multi_head_attention;
use reclip_autograd::Var;
use reclip_core::{DType, Device, Tensor, rng};

struct Block {
    batch: usize,
    len: usize,
    width: usize,
    heads: usize,
    x: Vec<f64>,
    w_in: Vec<f64>,
    b_in: Vec<f64>,
    w_out: Vec<f64>,
    b_out: Vec<f64>,
}

impl Block {
    fn random(batch: usize, len: usize, width: usize, heads: usize, seed: u64) -> Self {
        let mut r = rng(seed);
        let mut normal = |n: usize, std: f64| {
            Tensor::randn([n], 0.0, std, DType::F64, &Device::Cpu, &mut r).unwrap().to_vec_f64().unwrap()
        };
        let std = 1.0 / (width as f64).sqrt();
        Block {
            batch,
            len,
            width,
            heads,
            x: normal(batch * len * width, 1.0),
            w_in: normal(3 * width * width, std),
            b_in: normal(3 * width, 0.1),
            w_out: normal(width * width, std),
            b_out: normal(width, 0.1),
        }
    }

    /// `rows × out` = `rows × in` · Wᵀ + b, W stored `out × in`.
    fn linear(x: &[f64], w: &[f64], b: &[f64], inputs: usize) -> Vec<f64> {
        let outputs = b.len();
        let mut y = Vec::with_capacity(x.len() / inputs * outputs);
        for row in x.chunks(inputs) {
            for o in 0..outputs {
                y.push(b[o] + (0..inputs).map(|i| row[i] * w[o * inputs + i]).sum::<f64>());
            }
        }
        y
    }

    fn reference(&self, causal: bool) -> Vec<f64> {
        let (l, w) = (self.len, self.width);
        let d = w / self.heads;
        let qkv = Self::linear(&self.x, &self.w_in, &self.b_in, w);
        let at = |b: usize, t: usize, c: usize| qkv[(b * l + t) * 3 * w + c];
        let mut heads_out = vec![0.0; self.batch * l * w];
        for b in 0..self.batch {
            for h in 0..self.heads {
                for i in 0..l {
                    let keys = if causal { i + 1 } else { l };
                    let scores: Vec<f64> = (0..keys)
                        .map(|j| (0..d).map(|c| at(b, i, h * d + c) * at(b, j, w + h * d + c)).sum::<f64>())
                        .map(|s| s / (d as f64).sqrt())
                        .collect();
                    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
                    let total: f64 = e.iter().sum();
                    for c in 0..d {
                        heads_out[(b * l + i) * w + h * d + c] =
                            (0..keys).map(|j| e[j] / total * at(b, j, 2 * w + h * d + c)).sum::<f64>();
                    }
                }
            }
        }
        Self::linear(&heads_out, &self.w_out, &self.b_out, w)
    }

    fn evaluate(&self, causal: bool, dtype: DType) -> Vec<f64> {
        let t = |v: &[f64], dims: &[usize]| {
            Var::constant(Tensor::from_slice(v, dims, &Device::Cpu).unwrap().to_dtype(dtype).unwrap())
        };
        let w = self.width;
        let y = multi_head_attention(
            &t(&self.x, &[self.batch, self.len, w]),
            &t(&self.w_in, &[3 * w, w]),
            &t(&self.b_in, &[3 * w]),
            &t(&self.w_out, &[w, w]),
            &t(&self.b_out, &[w]),
            self.heads,
            causal,
        )
        .unwrap();
        assert_eq!(y.tensor().dims(), &[self.batch, self.len, w]);
        y.tensor().to_vec_f64().unwrap()
    }
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: element {i}: got {g}, want {w}");
    }
}

#[test]
fn block_matches_an_f64_reference() {
    for (batch, len, width, heads, seed) in [(2, 17, 64, 2, 1), (3, 7, 48, 3, 2), (1, 1, 8, 1, 3)] {
        let block = Block::random(batch, len, width, heads, seed);
        for causal in [false, true] {
            let want = block.reference(causal);
            let what = format!("b{batch} L{len} w{width} h{heads} causal={causal}");
            assert_close(&format!("{what} f64"), &block.evaluate(causal, DType::F64), &want, 1e-12);
            assert_close(&format!("{what} f32"), &block.evaluate(causal, DType::F32), &want, 2e-5);
        }
    }
}

#[test]
fn the_mask_changes_only_what_it_should() {
    // With the causal mask the last position sees every key: its output
    // equals the unmasked one, and the first position's differs.
    let block = Block::random(1, 9, 16, 2, 4);
    let (full, masked) = (block.evaluate(false, DType::F64), block.evaluate(true, DType::F64));
    let w = block.width;
    assert_close("last position", &masked[8 * w..], &full[8 * w..], 1e-12);
    assert!(masked[..w].iter().zip(&full[..w]).any(|(a, b)| (a - b).abs() > 1e-3));
}
