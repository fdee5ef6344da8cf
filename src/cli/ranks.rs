//! The job's ranks, for the commands that train: started once per process
//! (MPI allows no second start), ended with it — finalised after success,
//! the whole job aborted after an error on any rank, so that no rank waits
//! forever for one that has stopped.

use anyhow::Context;
use reclip_core::Device;
use reclip_dist::Comm;
use reclip_dist::launch::{self, DistChoice};
use std::sync::Mutex;

static RANKS: Mutex<Option<Comm>> = Mutex::new(None);

fn ranks() -> std::sync::MutexGuard<'static, Option<Comm>> {
    RANKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's ranks, as `--dist-backend` asks: started on the first
/// call, the same afterwards. With several, each rank's compute threads
/// get its share of the machine's cores.
pub fn start(backend: &str) -> anyhow::Result<Comm> {
    let choice: DistChoice = backend.parse().map_err(anyhow::Error::msg).context("--dist-backend")?;
    let mut ranks = ranks();
    if let Some(comm) = ranks.as_ref() {
        return Ok(comm.clone());
    }
    let comm = launch::start(choice)?;
    if comm.local_world() > 1 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Fails only when the pool already started, which nothing does before this.
        let _ = rayon::ThreadPoolBuilder::new().num_threads((cores / comm.local_world()).max(1)).build_global();
    }
    *ranks = Some(comm.clone());
    Ok(comm)
}

/// The ranks once this one has its `device`: NCCL between GPUs when
/// `--dist-backend` asks for it (or `auto` finds it built).
pub fn on_device(backend: &str, device: &Device) -> anyhow::Result<Comm> {
    let choice: DistChoice = backend.parse().map_err(anyhow::Error::msg).context("--dist-backend")?;
    let mut ranks = ranks();
    let host = ranks.clone().expect("ranks::start comes first");
    if host.backend() == reclip_dist::Backend::Nccl {
        return Ok(host);
    }
    let comm = launch::on_device(host, choice, device)?;
    *ranks = Some(comm.clone());
    Ok(comm)
}

/// An error unless every rank was started with the same arguments: ranks
/// that differ would train different runs into one folder.
pub fn check_same_command(comm: &Comm) -> anyhow::Result<()> {
    if comm.world() == 1 {
        return Ok(());
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&argv, &mut h);
    Ok(reclip_dist::check_agree(comm, "the command line", std::hash::Hasher::finish(&h))?)
}

/// Refuses to run `command` as one of several ranks: it has no
/// data-parallel form, and each rank would do the whole of it.
pub fn refuse_several(command: &str) -> anyhow::Result<()> {
    match launch::launched_ranks() {
        Some((n, who)) => {
            anyhow::bail!(
                "reclip {command} runs as one process, but {who} started {n}: only train and compare use ranks"
            )
        }
        None => Ok(()),
    }
}

/// Ends the ranks after the command: finalised when it succeeded; when it
/// failed on one of several ranks, the error is printed with the rank and
/// the whole job is aborted with exit status 2.
pub fn end(result: anyhow::Result<()>) -> anyhow::Result<()> {
    let comm = ranks().take();
    let Some(comm) = comm else { return result };
    match result {
        Ok(()) => Ok(comm.finish()?),
        Err(e) if comm.world() > 1 => {
            eprintln!("error: rank {} of {}: {e:#}", comm.rank(), comm.world());
            comm.abort(2)
        }
        Err(e) => {
            let _ = comm.finish();
            Err(e)
        }
    }
}
