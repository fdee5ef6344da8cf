use crate::Var;
use reclip_core::{Indices, Result, Tensor};

impl Var {
    /// Rows of dimension `dim` picked by `ids`; the gradient adds into them
    /// through the ids' grouping, which they carry already.
    pub fn index_select(&self, dim: isize, ids: &Indices) -> Result<Var> {
        let x = self.tensor().clone();
        let out = x.index_select_with(dim, ids)?;
        let ids = ids.clone();
        Var::from_op("index_select", &[self], out, move |g: &Tensor, _: &[bool]| {
            Ok(vec![Some(x.zeros_like()?.index_add_with(dim, &ids, g)?)])
        })
    }

    pub fn index_add(&self, dim: isize, ids: &Indices, src: &Var) -> Result<Var> {
        let out = self.tensor().index_add_with(dim, ids, src.tensor())?;
        let ids = ids.clone();
        Var::from_op("index_add", &[self, src], out, move |g: &Tensor, needs: &[bool]| {
            Ok(vec![needs[0].then(|| g.clone()), needs[1].then(|| g.index_select_with(dim, &ids)).transpose()?])
        })
    }

    pub fn gather(&self, dim: isize, index: &Tensor) -> Result<Var> {
        let x = self.tensor().clone();
        let out = x.gather(dim, index)?;
        let index = index.clone();
        Var::from_op("gather", &[self], out, move |g: &Tensor, _: &[bool]| {
            Ok(vec![Some(x.zeros_like()?.scatter_add(dim, &index, g)?)])
        })
    }

    pub fn scatter_add(&self, dim: isize, index: &Tensor, src: &Var) -> Result<Var> {
        let out = self.tensor().scatter_add(dim, index, src.tensor())?;
        let index = index.clone();
        Var::from_op("scatter_add", &[self, src], out, move |g: &Tensor, needs: &[bool]| {
            Ok(vec![needs[0].then(|| g.clone()), needs[1].then(|| g.gather(dim, &index)).transpose()?])
        })
    }
}
