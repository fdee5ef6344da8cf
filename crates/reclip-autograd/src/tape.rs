use crate::Param;
use reclip_core::{Error, Result, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

/// What an op does in the backward pass. It receives the gradient of its
/// output and which inputs need one, and returns one gradient per input (None
/// where not needed). It is consumed, so the activations it saved are freed
/// as soon as it has run.
pub trait Backward {
    fn backward(self: Box<Self>, grad: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>>;
}

impl<F> Backward for F
where
    F: FnOnce(&Tensor, &[bool]) -> Result<Vec<Option<Tensor>>>,
{
    fn backward(self: Box<Self>, grad: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        (*self)(grad, needs)
    }
}

enum Node {
    /// A trainable parameter: its gradient accumulates into the parameter.
    Param(Param),
    /// A tracked input whose gradient is returned in [`Gradients`].
    Input,
    Op {
        name: &'static str,
        inputs: Vec<Option<usize>>,
        backward: Option<Box<dyn Backward>>,
    },
}

struct TapeInner {
    recording: bool,
    nodes: Vec<Node>,
}

/// A reverse-mode tape. Ops on tracked [`Var`]s append a node holding their
/// backward closure; `Var::backward` walks the nodes in reverse. A tape made
/// with [`Tape::no_grad`] records nothing: parameters come out as constants.
#[derive(Clone)]
pub struct Tape(Rc<RefCell<TapeInner>>);

impl Default for Tape {
    fn default() -> Self {
        Self::new()
    }
}

impl Tape {
    pub fn new() -> Self {
        Tape(Rc::new(RefCell::new(TapeInner { recording: true, nodes: Vec::new() })))
    }

    /// A tape for evaluation: nothing is recorded, no activation is kept.
    pub fn no_grad() -> Self {
        let t = Self::new();
        t.0.borrow_mut().recording = false;
        t
    }

    pub fn is_recording(&self) -> bool {
        self.0.borrow().recording
    }

    /// Number of recorded nodes (parameters, inputs and ops).
    pub fn len(&self) -> usize {
        self.0.borrow().nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, node: Node) -> usize {
        let mut inner = self.0.borrow_mut();
        inner.nodes.push(node);
        inner.nodes.len() - 1
    }

    /// The parameter's value as a leaf whose gradient accumulates into it.
    pub fn param(&self, p: &Param) -> Var {
        let value = p.value();
        if !self.is_recording() {
            return Var::constant(value);
        }
        let id = self.push(Node::Param(p.clone()));
        Var { tensor: value, node: Some((self.clone(), id)) }
    }

    /// A leaf whose gradient `backward` returns in [`Gradients`].
    pub fn input(&self, t: Tensor) -> Var {
        if !self.is_recording() {
            return Var::constant(t);
        }
        let id = self.push(Node::Input);
        Var { tensor: t, node: Some((self.clone(), id)) }
    }

    fn same(&self, other: &Tape) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// A tensor, possibly tracked on a tape.
#[derive(Clone)]
pub struct Var {
    tensor: Tensor,
    node: Option<(Tape, usize)>,
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var({:?}, tracked: {})", self.tensor, self.is_tracked())
    }
}

impl Var {
    /// An untracked value: no gradient flows into it.
    pub fn constant(tensor: Tensor) -> Self {
        Var { tensor, node: None }
    }

    pub fn tensor(&self) -> &Tensor {
        &self.tensor
    }

    pub fn into_tensor(self) -> Tensor {
        self.tensor
    }

    pub fn is_tracked(&self) -> bool {
        self.node.is_some()
    }

    /// The same value, cut off from the tape.
    pub fn detach(&self) -> Var {
        Var::constant(self.tensor.clone())
    }

    pub fn id(&self) -> Option<usize> {
        self.node.as_ref().map(|(_, id)| *id)
    }

    /// True when any of `inputs` is tracked, i.e. an op on them must record.
    pub fn any_tracked(inputs: &[&Var]) -> bool {
        inputs.iter().any(|v| v.is_tracked())
    }

    /// Records an op: `output` was computed from `inputs`, and `backward`
    /// turns the output's gradient into the inputs' gradients. When no input
    /// is tracked, the result is a constant and `backward` is dropped at once.
    pub fn from_op(
        name: &'static str,
        inputs: &[&Var],
        output: Tensor,
        backward: impl Backward + 'static,
    ) -> Result<Var> {
        let mut tape: Option<&Tape> = None;
        for v in inputs {
            if let Some((t, _)) = &v.node {
                match tape {
                    Some(first) if !first.same(t) => {
                        return Err(Error::invalid(name, "inputs are tracked on different tapes"));
                    }
                    _ => tape = Some(t),
                }
            }
        }
        let Some(tape) = tape else {
            return Ok(Var::constant(output));
        };
        let ids = inputs.iter().map(|v| v.id()).collect();
        let id = tape.push(Node::Op { name, inputs: ids, backward: Some(Box::new(backward)) });
        Ok(Var { tensor: output, node: Some((tape.clone(), id)) })
    }

    /// Backpropagates from this scalar: accumulates into every parameter's
    /// gradient and returns the gradients of tracked inputs.
    pub fn backward(&self) -> Result<Gradients> {
        self.backward_notify(&mut |_| Ok(()))
    }

    /// Backpropagates `grad` as the gradient of this value. The tape's nodes
    /// up to this one are consumed.
    pub fn backward_with(&self, grad: Tensor) -> Result<Gradients> {
        self.backward_hooked(grad, &mut |_| Ok(()))
    }

    /// Backpropagates from this scalar, calling `done` with each parameter
    /// on the tape as soon as its gradient is complete (its earliest use on
    /// the tape has been reached), while the rest of the backward pass is
    /// still to run: data parallelism starts reducing those gradients there.
    /// `done` is called once per parameter, also for one that got no gradient.
    pub fn backward_notify(&self, done: &mut dyn FnMut(&Param) -> Result<()>) -> Result<Gradients> {
        if self.tensor.elem_count() != 1 {
            return Err(Error::invalid("backward", format!("needs a scalar, got shape {}", self.tensor.shape())));
        }
        let seed = Tensor::ones(self.tensor.shape().clone(), self.tensor.dtype(), self.tensor.device())?;
        self.backward_hooked(seed, done)
    }

    fn backward_hooked(&self, grad: Tensor, done: &mut dyn FnMut(&Param) -> Result<()>) -> Result<Gradients> {
        let Some((tape, root)) = &self.node else {
            return Err(Error::invalid("backward", "value is not tracked on a tape"));
        };
        if grad.shape() != self.tensor.shape() {
            return Err(Error::ShapeMismatch {
                op: "backward",
                lhs: self.tensor.shape().clone(),
                rhs: grad.shape().clone(),
            });
        }
        // Take the nodes out so that each one is dropped right after it runs.
        let mut nodes: Vec<Node> = std::mem::take(&mut tape.0.borrow_mut().nodes);
        nodes.truncate(root + 1);
        let mut grads: Vec<Option<Tensor>> = vec![None; nodes.len()];
        grads[*root] = Some(grad);
        let earliest = earliest_uses(&nodes);
        let mut out = Gradients { grads: Vec::new() };
        while let Some(node) = nodes.pop() {
            let id = nodes.len();
            let Some(g) = grads[id].take() else {
                if let Node::Param(p) = &node
                    && earliest[id]
                {
                    done(p)?;
                }
                continue;
            };
            match node {
                Node::Param(p) => {
                    p.accumulate_grad(&g)?;
                    if earliest[id] {
                        done(&p)?;
                    }
                }
                Node::Input => out.grads.push((id, g)),
                Node::Op { name, inputs, backward } => {
                    // Every recorded node descends from a leaf, so "tracked" is "needs a gradient".
                    let needs: Vec<bool> = inputs.iter().map(Option::is_some).collect();
                    let backward = backward.expect("each node runs once");
                    let input_grads = backward.backward(&g, &needs)?;
                    drop(g);
                    if input_grads.len() != inputs.len() {
                        return Err(Error::invalid(name, "backward returned the wrong number of gradients"));
                    }
                    for (input, ig) in inputs.iter().zip(input_grads) {
                        let (Some(i), Some(ig)) = (input, ig) else { continue };
                        grads[*i] = Some(match grads[*i].take() {
                            Some(acc) => acc.add(&ig)?,
                            None => ig,
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// For each node, whether it is the first of the tape's leaves for its
/// parameter: the last one the backward pass reaches.
fn earliest_uses(nodes: &[Node]) -> Vec<bool> {
    let mut seen: Vec<&Param> = Vec::new();
    nodes
        .iter()
        .map(|node| match node {
            Node::Param(p) if !seen.iter().any(|q| q.same(p)) => {
                seen.push(p);
                true
            }
            _ => false,
        })
        .collect()
}

/// Gradients of the tracked inputs after a backward pass.
pub struct Gradients {
    grads: Vec<(usize, Tensor)>,
}

impl Gradients {
    pub fn get(&self, v: &Var) -> Option<&Tensor> {
        let id = v.id()?;
        self.grads.iter().find(|(i, _)| *i == id).map(|(_, g)| g)
    }
}
