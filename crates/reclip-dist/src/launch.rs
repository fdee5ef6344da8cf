//! How a process finds its ranks: from the launcher that started it
//! (`mpirun`, `srun`, MPICH's hydra), and which backend `--dist-backend`
//! asks for.

use crate::{Comm, Error, Result};
use reclip_core::Device;
use std::str::FromStr;

const OPTION: &str = "--dist-backend";

/// What `--dist-backend` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistChoice {
    /// MPI when a launcher started several ranks (NCCL for their GPUs, in a
    /// build with it), else one process.
    Auto,
    /// One process; refused when a launcher started several.
    Single,
    Mpi,
    Nccl,
}

impl FromStr for DistChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => Ok(DistChoice::Auto),
            "single" => Ok(DistChoice::Single),
            "mpi" => Ok(DistChoice::Mpi),
            "nccl" => Ok(DistChoice::Nccl),
            other => Err(format!("unknown backend '{other}' (expected auto, single, mpi or nccl)")),
        }
    }
}

/// The environment variables in which launchers give the number of ranks:
/// Open MPI's mpirun, MPICH and Intel MPI (hydra), SLURM's srun.
const WORLD_SIZE_VARS: [(&str, &str); 3] =
    [("OMPI_COMM_WORLD_SIZE", "mpirun"), ("PMI_SIZE", "the MPI launcher"), ("SLURM_STEP_NUM_TASKS", "srun")];

/// The number of ranks a launcher started and its name, when more than one.
pub fn launched_ranks() -> Option<(usize, &'static str)> {
    WORLD_SIZE_VARS.iter().find_map(|(var, who)| {
        let n: usize = std::env::var(var).ok()?.trim().parse().ok()?;
        (n > 1).then_some((n, *who))
    })
}

/// This process's ranks as `choice` asks, before a device is chosen: MPI
/// for `mpi` and `nccl` (NCCL is bootstrapped over it), and for `auto`
/// under a launcher of several ranks; else one process.
pub fn start(choice: DistChoice) -> Result<Comm> {
    match (choice, launched_ranks()) {
        (DistChoice::Single, Some((n, who))) => Err(Error::invalid(
            OPTION,
            format!("single, but {who} started {n} ranks, which would each train alone into the same --out"),
        )),
        (DistChoice::Single, None) | (DistChoice::Auto, None) => Ok(Comm::single()),
        (DistChoice::Auto, Some(_)) | (DistChoice::Mpi, _) | (DistChoice::Nccl, _) => mpi(),
    }
}

#[cfg(feature = "mpi")]
fn mpi() -> Result<Comm> {
    Ok(Comm::new(std::sync::Arc::new(crate::mpi::MpiComm::init()?)))
}

#[cfg(not(feature = "mpi"))]
fn mpi() -> Result<Comm> {
    let launched = launched_ranks().map(|(n, who)| format!("{who} started {n} ranks, but ")).unwrap_or_default();
    Err(Error::invalid(
        OPTION,
        format!(
            "{launched}this reclip was built without MPI: install it (tools/install-mpi.sh) and build with \
             `cargo build --release --features mpi`"
        ),
    ))
}

/// The ranks' collectives once each rank has its device: NCCL for GPU
/// ranks when asked (or, with `auto`, when the build has it), else `host`.
pub fn on_device(host: Comm, choice: DistChoice, device: &Device) -> Result<Comm> {
    let wants_nccl = match choice {
        DistChoice::Nccl => true,
        DistChoice::Auto => cfg!(feature = "nccl") && host.world() > 1 && !device.is_cpu(),
        DistChoice::Single | DistChoice::Mpi => false,
    };
    if !wants_nccl {
        return Ok(host);
    }
    if device.is_cpu() {
        return Err(Error::invalid(OPTION, "nccl runs on GPUs: add --device cuda"));
    }
    nccl(host, device)
}

#[cfg(feature = "nccl")]
fn nccl(host: Comm, device: &Device) -> Result<Comm> {
    Ok(Comm::new(std::sync::Arc::new(crate::NcclComm::new(host.collective().clone(), device)?)))
}

#[cfg(not(feature = "nccl"))]
fn nccl(_: Comm, _: &Device) -> Result<Comm> {
    Err(Error::invalid(OPTION, "nccl, but this reclip was built without it: `cargo build --release --features nccl`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_a_wrong_one_says_what_is_expected() {
        assert_eq!("nccl".parse::<DistChoice>().unwrap(), DistChoice::Nccl);
        assert!("gloo".parse::<DistChoice>().unwrap_err().contains("auto, single, mpi or nccl"));
    }

    #[test]
    fn nccl_on_the_cpu_is_refused_by_name() {
        let e = on_device(Comm::single(), DistChoice::Nccl, &Device::Cpu).err().unwrap().to_string();
        assert!(e.starts_with("--dist-backend: nccl runs on GPUs"), "{e}");
        assert_eq!(on_device(Comm::single(), DistChoice::Auto, &Device::Cpu).unwrap().world(), 1);
    }
}
