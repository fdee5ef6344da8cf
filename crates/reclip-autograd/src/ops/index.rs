use crate::{Op, Var};
use reclip_core::{Indices, Result, Tensor};

/// Rows `ids` of dimension `dim`; the gradient adds into them through the
/// ids' grouping, which they carry already.
struct IndexSelect {
    dim: isize,
    ids: Indices,
}

impl Op<1> for IndexSelect {
    const NAME: &'static str = "index_select";
    /// The input, which the gradient takes its shape from.
    type Saved = Tensor;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Tensor)> {
        Ok((x.index_select_with(self.dim, &self.ids)?, x.clone()))
    }

    fn backward(self, x: Tensor, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(x.zeros_like()?.index_add_with(self.dim, &self.ids, g)?)])
    }
}

/// `base` with `src` rows added at `ids` of dimension `dim`.
struct IndexAdd {
    dim: isize,
    ids: Indices,
}

impl Op<2> for IndexAdd {
    const NAME: &'static str = "index_add";
    type Saved = ();

    fn forward(&self, [base, src]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, ())> {
        Ok((base.index_add_with(self.dim, &self.ids, src)?, ()))
    }

    fn backward(self, _: (), g: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        Ok([needs[0].then(|| g.clone()), needs[1].then(|| g.index_select_with(self.dim, &self.ids)).transpose()?])
    }
}

/// `x` gathered at `index` along `dim`.
struct Gather {
    dim: isize,
    index: Tensor,
}

impl Op<1> for Gather {
    const NAME: &'static str = "gather";
    /// The input, which the gradient takes its shape from.
    type Saved = Tensor;

    fn forward(&self, [x]: [&Tensor; 1], _: [bool; 1]) -> Result<(Tensor, Tensor)> {
        Ok((x.gather(self.dim, &self.index)?, x.clone()))
    }

    fn backward(self, x: Tensor, g: &Tensor, _: [bool; 1]) -> Result<[Option<Tensor>; 1]> {
        Ok([Some(x.zeros_like()?.scatter_add(self.dim, &self.index, g)?)])
    }
}

/// `base` with `src` added at `index` along `dim`.
struct ScatterAdd {
    dim: isize,
    index: Tensor,
}

impl Op<2> for ScatterAdd {
    const NAME: &'static str = "scatter_add";
    type Saved = ();

    fn forward(&self, [base, src]: [&Tensor; 2], _: [bool; 2]) -> Result<(Tensor, ())> {
        Ok((base.scatter_add(self.dim, &self.index, src)?, ()))
    }

    fn backward(self, _: (), g: &Tensor, needs: [bool; 2]) -> Result<[Option<Tensor>; 2]> {
        Ok([needs[0].then(|| g.clone()), needs[1].then(|| g.gather(self.dim, &self.index)).transpose()?])
    }
}

impl Var {
    /// Rows of dimension `dim` picked by `ids`; the gradient adds into them
    /// through the ids' grouping, which they carry already.
    pub fn index_select(&self, dim: isize, ids: &Indices) -> Result<Var> {
        IndexSelect { dim, ids: ids.clone() }.apply([self])
    }

    pub fn index_add(&self, dim: isize, ids: &Indices, src: &Var) -> Result<Var> {
        IndexAdd { dim, ids: ids.clone() }.apply([self, src])
    }

    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Var> {
        Gather { dim, index: index.clone() }.apply([self])
    }

    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Var) -> Result<Var> {
        ScatterAdd { dim, index: index.clone() }.apply([self, src])
    }
}
