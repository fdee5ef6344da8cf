//! The MPI backend across two real ranks: this test launches itself under
//! `mpirun -np 2`, and each rank checks every collective against what it
//! must give (rank-dependent inputs, so that a wrong order or a missing
//! rank shows).

use reclip_autograd::{Param, Tape};
use reclip_core::{DType, Device, Tensor};
use reclip_dist::{Comm, GradReducer, all_gather, check_agree, weights_checksum};
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
    let c = reclip_autograd::Var::constant(t(&c, &[4, 3], DType::F32));
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
}

#[test]
fn collectives_over_two_mpi_ranks() {
    if std::env::var_os(RANK_VAR).is_some() {
        let comm = reclip_dist::launch::start(reclip_dist::launch::DistChoice::Mpi).unwrap();
        each_rank(&comm);
        comm.finish().unwrap();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("mpirun")
        .args(["--oversubscribe", "-np", "2"])
        .arg(exe)
        .args(["--exact", "collectives_over_two_mpi_ranks", "--nocapture", "--test-threads", "1"])
        .env(RANK_VAR, "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_mpi_yield_when_idle", "1")
        .output()
        .unwrap_or_else(|e| panic!("mpirun: {e} (install Open MPI with tools/install-mpi.sh)"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the two ranks failed:\n{text}");
    // The ranks' lines interleave; each rank's summary line is whole.
    assert_eq!(text.matches("test result: ok. 1 passed").count(), 2, "{text}");
}
