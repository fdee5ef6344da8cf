//! The MPI backend across real ranks: each test launches itself under
//! `mpirun -np N`, and each rank checks every collective against what it
//! must give (rank-dependent inputs, so that a wrong order or a missing
//! rank shows). Two ranks for every collective; the ring exchange also over
//! three, where its two directions differ, and one, where it is the
//! identity.

use reclip_autograd::Var;
use reclip_autograd::{Param, Tape};
use reclip_core::{DType, Device, Tensor};
use reclip_dist::{Comm, GradReducer, RingDirection, all_gather, check_agree, ring_shift, weights_checksum};
use std::process::Command;

const RANK_VAR: &str = "RECLIP_DIST_TEST_RANK";

fn t(v: &[f64], dims: &[usize], dtype: DType) -> Tensor {
    Tensor::from_slice(v, dims, &Device::Cpu).unwrap().to_dtype(dtype).unwrap()
}

/// Rows [2, 3] holding 10·rank + i.
fn rows_of(rank: usize, dtype: DType) -> Tensor {
    let v: Vec<f64> = (0..6).map(|i| (10 * rank + i) as f64).collect();
    t(&v, &[2, 3], dtype)
}

fn each_rank(comm: &Comm) {
    let (rank, world) = (comm.rank(), comm.world());
    assert_eq!(world, 2);
    for dtype in [DType::F32, DType::BF16, DType::F64] {
        let gathered = comm.all_gather(&rows_of(rank, dtype)).unwrap();
        assert_eq!(gathered.dims(), &[4, 3]);
        assert_eq!(gathered.dtype(), dtype);
        let expected: Vec<f64> = (0..2).flat_map(|r| (0..6).map(move |i| (10 * r + i) as f64)).collect();
        assert_eq!(gathered.to_vec_f64().unwrap(), expected, "all_gather {dtype}");

        // Each rank scatters (rank + 1)·[0..12); the sum is 3·[0..12).
        let v: Vec<f64> = (0..12).map(|i| ((rank + 1) * i) as f64).collect();
        let mine = comm.reduce_scatter_sum(&t(&v, &[4, 3], dtype)).unwrap();
        let want: Vec<f64> = (6 * rank..6 * rank + 6).map(|i| (3 * i) as f64).collect();
        assert_eq!(mine.dims(), &[2, 3]);
        assert_eq!(mine.to_vec_f64().unwrap(), want, "reduce_scatter {dtype}");

        // Two sums in flight at once, waited for in order.
        let a = comm.start_all_reduce_sum(t(&[rank as f64, 1.0], &[2], dtype)).unwrap();
        let b = comm.start_all_reduce_sum(t(&[2.0 * rank as f64], &[1], dtype)).unwrap();
        assert_eq!(comm.wait(a).unwrap().to_vec_f64().unwrap(), vec![1.0, 2.0]);
        assert_eq!(comm.wait(b).unwrap().to_vec_f64().unwrap(), vec![2.0]);
    }
    assert_eq!(comm.all_gather_u64(&[rank as u64, 7]).unwrap(), vec![0, 7, 1, 7]);
    assert_eq!(comm.all_gather_f64(&[0.5 * rank as f64]).unwrap(), vec![0.0, 0.5]);
    let bytes = comm.broadcast_bytes(if rank == 0 { b"from rank 0".to_vec() } else { vec![9; 3] }).unwrap();
    assert_eq!(bytes, b"from rank 0");
    let mine: Vec<u8> = (0..3 + 9 * rank as u8).collect();
    let all = comm.all_gather_bytes(&mine).unwrap();
    assert_eq!(all, vec![vec![0, 1, 2], (0..12).collect::<Vec<u8>>()]);
    comm.barrier().unwrap();

    check_agree(comm, "a shared value", 5).unwrap();
    let e = check_agree(comm, "each rank's own value", rank as u64).unwrap_err().to_string();
    assert!(e.contains("ranks disagree on each rank's own value") && e.contains("rank 1 has"), "{e}");
    let same = Param::new("w", t(&[1.0, 2.0], &[2], DType::F32));
    check_agree(comm, "the same weights", weights_checksum(&[same]).unwrap()).unwrap();
    let own = Param::new("w", t(&[1.0, rank as f64], &[2], DType::F32));
    assert!(check_agree(comm, "different weights", weights_checksum(&[own]).unwrap()).is_err());

    // The gather's gradient: d/dx_r of Σ c ⊙ gather(x) summed over both
    // ranks' losses is 2·c's rows of rank r.
    let tape = Tape::new();
    let x = tape.input(rows_of(rank, DType::F32));
    let c: Vec<f64> = (0..12).map(|i| i as f64).collect();
    let c = Var::constant(t(&c, &[4, 3], DType::F32));
    let loss = all_gather(comm, &x).unwrap().mul(&c).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let want: Vec<f64> = (6 * rank..6 * rank + 6).map(|i| (2 * i) as f64).collect();
    assert_eq!(grads.get(&x).unwrap().to_vec_f64().unwrap(), want);

    // Buckets: the mean of the ranks' gradients, in every parameter; one
    // without a gradient keeps none.
    let params: Vec<Param> = [3, 1, 2]
        .iter()
        .enumerate()
        .map(|(i, n)| Param::new(format!("p{i}"), t(&vec![0.0; *n], &[*n], DType::F32)))
        .collect();
    params[0].set_grad(Some(t(&[rank as f64, 1.0, 2.0], &[3], DType::F32)));
    params[2].set_grad(Some(t(&[4.0 * rank as f64, -1.0], &[2], DType::F32)));
    let mut reducer = GradReducer::new(comm, &params, 8);
    for p in params.iter().rev() {
        reducer.ready(p).unwrap();
    }
    reducer.finish().unwrap();
    assert_eq!(params[0].grad().unwrap().to_vec_f64().unwrap(), vec![0.5, 1.0, 2.0]);
    assert!(params[1].grad().is_none());
    assert_eq!(params[2].grad().unwrap().to_vec_f64().unwrap(), vec![2.0, -1.0]);

    ring_checks(comm);
}

/// The ring exchange, for any number of ranks: the block of the rank before
/// (Up) or after (Down) this one, and the tape node's gradient, which comes
/// from the rank that received this one's block.
fn ring_checks(comm: &Comm) {
    let (rank, world) = (comm.rank(), comm.world());
    let (next, previous) = ((rank + 1) % world, (rank + world - 1) % world);
    for (direction, from, to) in [(RingDirection::Up, previous, next), (RingDirection::Down, next, previous)] {
        for dtype in [DType::F32, DType::BF16, DType::F64] {
            let got = comm.ring_shift(&rows_of(rank, dtype), direction).unwrap();
            assert_eq!((got.dims(), got.dtype()), (&[2, 3][..], dtype));
            let want = rows_of(from, DType::F64).to_vec_f64().unwrap();
            assert_eq!(got.to_vec_f64().unwrap(), want, "ring_shift {direction:?} {dtype}");
        }

        // Each rank's loss is Σ c_rank ⊙ shift(x): the gradient of the
        // job's loss with respect to x_rank is c of the rank that received
        // x_rank.
        let c_of = |r: usize| t(&(0..6).map(|i| (100 * r + 7 * i) as f64).collect::<Vec<_>>(), &[2, 3], DType::F32);
        let tape = Tape::new();
        let x = tape.input(rows_of(rank, DType::F32));
        let y = ring_shift(comm, &x, direction).unwrap();
        assert_eq!(y.tensor().to_vec_f64().unwrap(), rows_of(from, DType::F64).to_vec_f64().unwrap());
        let loss = y.mul(&Var::constant(c_of(rank))).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let want = c_of(to).to_vec_f64().unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec_f64().unwrap(), want, "ring_shift's gradient {direction:?}");
    }
    comm.barrier().unwrap();
}

/// Runs `each` on `ranks` MPI ranks: the test named `test` launches itself
/// under mpirun, and each rank, started with `RANK_VAR` naming the folder
/// where it reports that it finished, runs only it.
fn under_mpirun(test: &str, ranks: usize, each: fn(&Comm)) {
    if let Some(done) = std::env::var_os(RANK_VAR) {
        let comm = reclip_dist::launch::start(reclip_dist::launch::DistChoice::Mpi).unwrap();
        each(&comm);
        std::fs::write(std::path::Path::new(&done).join(format!("rank-{}", comm.rank())), b"").unwrap();
        comm.finish().unwrap();
        return;
    }
    // Each rank that got through its checks leaves a file here: the ranks'
    // output interleaves, even within lines, so it cannot be counted.
    let done = std::env::temp_dir().join(format!("reclip-mpi-ranks-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&done).unwrap();
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("mpirun")
        .args(["--oversubscribe", "-np", &ranks.to_string()])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(RANK_VAR, &done)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .output()
        .unwrap_or_else(|e| panic!("mpirun: {e} (install Open MPI with tools/install-mpi.sh)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the {ranks} ranks failed:\n{text}");
    let finished = (0..ranks).filter(|r| done.join(format!("rank-{r}")).exists()).count();
    std::fs::remove_dir_all(&done).unwrap();
    assert_eq!(finished, ranks, "only {finished} of {ranks} ranks finished their checks:\n{text}");
}

#[test]
fn collectives_over_two_mpi_ranks() {
    under_mpirun("collectives_over_two_mpi_ranks", 2, each_rank);
}

#[test]
fn ring_shift_over_three_mpi_ranks() {
    under_mpirun("ring_shift_over_three_mpi_ranks", 3, ring_checks);
}

#[test]
fn ring_shift_over_one_mpi_rank() {
    under_mpirun("ring_shift_over_one_mpi_rank", 1, ring_checks);
}
