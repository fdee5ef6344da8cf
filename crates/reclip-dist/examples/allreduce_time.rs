//! Times the gradient all-reduce of a model, as training issues it: the
//! whole gradient in one call, and in DDP's buckets, each started and then
//! all waited for, in each dtype, through NCCL (GPU) or MPI (CPU).
//!
//! ```sh
//! allreduce_time --backend nccl --device cuda --model ViT-B-16   # a GPU rank
//! allreduce_time --backend mpi --device cpu --model reclip-tiny  # CPU ranks
//! ```
//!
//! Ranks come from MPI as in training: run it alone (an MPI singleton: one
//! rank) or under `mpirun -np N`. Rank 0 prints one line per case, then the
//! same figures as one JSON object a line. On one rank NCCL moves no data, so
//! the figure is the cost of the call and its event ordering; bandwidths are
//! printed from two ranks up.

use clap::{Parser, ValueEnum};
use reclip_core::{DType, Device, Tensor};
use reclip_dist::mpi::MpiComm;
use reclip_dist::{Collective, DEFAULT_BUCKET_MIB, NcclComm};
use reclip_model::ModelConfig;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Via {
    Nccl,
    Mpi,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Where {
    Cuda,
    Cpu,
}

/// The dtypes a gradient comes in (f64 on the CPU only).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Precision {
    F32,
    Bf16,
    F64,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::Bf16 => DType::BF16,
            Precision::F64 => DType::F64,
        }
    }
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "nccl")]
    backend: Via,
    #[arg(long, value_enum, default_value = "cuda")]
    device: Where,
    /// A preset or an open_clip config file: the gradient is its parameter count.
    #[arg(long, default_value = "ViT-B-16")]
    model: String,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,bf16")]
    dtypes: Vec<Precision>,
    #[arg(long, default_value_t = DEFAULT_BUCKET_MIB)]
    bucket_mib: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 20)]
    iters: usize,
}

type Failure = Box<dyn std::error::Error>;

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("allreduce_time: {e}");
        std::process::exit(1);
    }
}

/// The communicator timed, and NCCL's own handle for its device time.
struct Timed {
    comm: Arc<dyn Collective>,
    nccl: Option<Arc<NcclComm>>,
    device: Device,
}

fn run(args: Args) -> Result<(), Failure> {
    let host: Arc<dyn Collective> = Arc::new(MpiComm::init()?);
    let device = match args.device {
        Where::Cuda => reclip_cuda::cuda_device(host.local_rank(), false)?,
        Where::Cpu => Device::Cpu,
    };
    let timed = match args.backend {
        Via::Nccl => {
            let nccl = Arc::new(NcclComm::new(host.clone(), &device)?);
            if host.rank() == 0 {
                println!("NCCL {}, {} rank(s), {device}", NcclComm::version()?, host.world());
            }
            Timed { comm: nccl.clone(), nccl: Some(nccl), device }
        }
        Via::Mpi => Timed { comm: host.clone(), nccl: None, device },
    };
    let count = usize::try_from(ModelConfig::load(&args.model)?.num_params()?)?;
    for dtype in args.dtypes.iter().map(|p| p.dtype()) {
        let bucket = (args.bucket_mib << 20) / dtype.size_in_bytes();
        for (layout, sizes) in [("whole", vec![count]), ("buckets", split(count, bucket))] {
            let case = Case { model: &args.model, dtype, layout, bucket_mib: args.bucket_mib, sizes };
            let row = case.time(&timed, args.warmup, args.iters)?;
            if timed.comm.rank() == 0 {
                row.print(timed.comm.world());
            }
        }
    }
    timed.comm.finish()?;
    Ok(())
}

/// `count` elements in pieces of at most `piece`.
fn split(count: usize, piece: usize) -> Vec<usize> {
    let piece = piece.max(1);
    (0..count.div_ceil(piece)).map(|i| piece.min(count - i * piece)).collect()
}

struct Case<'a> {
    model: &'a str,
    dtype: DType,
    layout: &'static str,
    bucket_mib: usize,
    /// The elements of each tensor summed, in the order they are started.
    sizes: Vec<usize>,
}

struct Row<'a> {
    case: Case<'a>,
    host_ms: f64,
    device_ms: Option<f64>,
}

impl<'a> Case<'a> {
    /// Median milliseconds of `iters` rounds after `warmup`: start every
    /// tensor's sum, wait for each, then for the device. The first round's
    /// sums are checked: all ones summed over `world` ranks.
    fn time(self, timed: &Timed, warmup: usize, iters: usize) -> Result<Row<'a>, Failure> {
        let mut tensors =
            self.sizes.iter().map(|&n| Tensor::ones([n], self.dtype, &timed.device)).collect::<Result<Vec<_>, _>>()?;
        let (mut host_ms, mut device_ms) = (Vec::new(), Vec::new());
        for round in 0..warmup + iters {
            let start = Instant::now();
            let pending =
                tensors.into_iter().map(|t| timed.comm.start_all_reduce_sum(t)).collect::<Result<Vec<_>, _>>()?;
            tensors = pending.into_iter().map(|p| p.wait()).collect::<Result<Vec<_>, _>>()?;
            timed.device.synchronize()?;
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            let on_device = timed.nccl.as_ref().map(|n| n.take_device_seconds()).transpose()?;
            if round == 0 {
                check_sums(&tensors, timed.comm.world())?;
            }
            if round >= warmup {
                host_ms.push(elapsed);
                device_ms.extend(on_device.map(|s| s * 1e3));
            }
        }
        let device_ms = (!device_ms.is_empty()).then(|| median(&mut device_ms));
        Ok(Row { host_ms: median(&mut host_ms), device_ms, case: self })
    }
}

/// The first and last element of each sum of ones: the number of ranks.
fn check_sums(sums: &[Tensor], world: usize) -> Result<(), Failure> {
    for t in sums {
        let n = t.elem_count();
        for i in [0, n.saturating_sub(1)] {
            let got = t.narrow(0, i, 1)?.to_scalar()?;
            if got != world as f64 {
                return Err(format!("element {i} of a sum of ones over {world} rank(s) is {got}").into());
            }
        }
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Row<'_> {
    fn print(&self, world: usize) {
        let c = &self.case;
        let elements: usize = c.sizes.iter().sum();
        let bytes = elements * c.dtype.size_in_bytes();
        let layout = match c.layout {
            "buckets" => format!("{} buckets of {} MiB", c.sizes.len(), c.bucket_mib),
            _ => "whole".to_string(),
        };
        // Each rank sends and receives 2(n-1)/n of the data in a ring
        // all-reduce: NCCL's bus bandwidth, comparable across world sizes.
        let bus_gbps = |ms: f64| (world > 1).then(|| bytes as f64 * 2.0 * (world - 1) as f64 / world as f64 / ms / 1e6);
        let device = self.device_ms.map(|ms| format!(", device {ms:.3} ms")).unwrap_or_default();
        let bus = bus_gbps(self.device_ms.unwrap_or(self.host_ms)).map(|g| format!(", bus {g:.1} GB/s"));
        println!(
            "all-reduce {} {}: {elements} elements ({:.1} MB), {layout}: host {:.3} ms{device}{}",
            c.model,
            c.dtype,
            bytes as f64 / 1e6,
            self.host_ms,
            bus.unwrap_or_default()
        );
        let json = serde_json::json!({
            "model": c.model, "dtype": c.dtype.to_string(), "layout": c.layout, "calls": c.sizes.len(),
            "elements": elements, "bytes": bytes, "world": world,
            "host_ms": self.host_ms, "device_ms": self.device_ms,
        });
        println!("{json}");
    }
}
