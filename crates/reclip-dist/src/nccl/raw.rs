//! The NCCL communicator and the calls we make on it, through cudarc's
//! low-level bindings (libnccl is loaded at the first call).

use cudarc::nccl::result::{self, NcclError, NcclStatus};
use cudarc::nccl::sys;
use reclip_core::{DType, Error, Result};
use std::ffi::{CStr, c_int, c_void};

/// The bytes of an `ncclUniqueId`, as rank 0 broadcasts them.
pub(super) const UNIQUE_ID_BYTES: usize = 128;

/// NCCL's element type for `dtype`: the float types that gradients and
/// features come in.
pub(super) fn data_type(op: &'static str, dtype: DType) -> Result<sys::ncclDataType_t> {
    match dtype {
        DType::F32 => Ok(sys::ncclDataType_t::ncclFloat32),
        DType::BF16 => Ok(sys::ncclDataType_t::ncclBfloat16),
        DType::F64 => Ok(sys::ncclDataType_t::ncclFloat64),
        other => Err(Error::DType { op, got: other, expected: "f32, bf16 or f64" }),
    }
}

/// Whether the dynamic loader finds libnccl under a name cudarc asks for:
/// cudarc panics at the first call into a library it cannot load.
pub(super) fn check_library() -> Result<()> {
    // SAFETY: only tries to load the library.
    if unsafe { sys::is_culib_present() } {
        return Ok(());
    }
    Err(Error::Device(
        "NCCL cannot be loaded: no libnccl.so on the library path (the nvidia-nccl wheel ships only \
         libnccl.so.2: link it as libnccl.so in a directory on LD_LIBRARY_PATH)"
            .into(),
    ))
}

/// The loaded library's version, e.g. "2.27.7".
pub(super) fn version() -> Result<String> {
    check_library()?;
    let v = result::get_nccl_version().map_err(|e| nccl_error("version query", None, e))?;
    // NCCL_VERSION_CODE since 2.9: major·10000 + minor·100 + patch.
    Ok(format!("{}.{}.{}", v / 10000, v % 10000 / 100, v % 100))
}

/// A new unique id (rank 0's, which every rank then joins with).
pub(super) fn new_unique_id() -> Result<Vec<u8>> {
    let id = result::get_uniqueid().map_err(|e| nccl_error("creating the unique id", None, e))?;
    Ok(id.internal.iter().map(|&c| c as u8).collect())
}

/// The unique id in `bytes`, as [`new_unique_id`] wrote it.
pub(super) fn unique_id(bytes: &[u8]) -> Result<sys::ncclUniqueId> {
    let internal: [u8; UNIQUE_ID_BYTES] = bytes.try_into().map_err(|_| {
        Error::Device(format!("NCCL unique id: {} bytes received, expected {UNIQUE_ID_BYTES}", bytes.len()))
    })?;
    Ok(sys::ncclUniqueId { internal: internal.map(|b| b as std::ffi::c_char) })
}

/// `v` as the C int NCCL takes for ranks.
fn int(v: usize, what: &str) -> Result<c_int> {
    c_int::try_from(v).map_err(|_| Error::Device(format!("NCCL: {what} {v} exceeds NCCL's 32-bit limit")))
}

/// One rank's communicator. Every call on it goes through the mutex that
/// holds it: NCCL does not allow concurrent calls on one communicator.
pub(super) struct Handle(sys::ncclComm_t);

// SAFETY: a communicator may be used from any thread, one call at a time,
// which the mutex around the handle ensures.
unsafe impl Send for Handle {}

impl Handle {
    /// Joins the communicator of `world` ranks named by `id` as `rank`, on
    /// the CUDA device whose context is current. Blocks until every rank
    /// has joined.
    pub(super) fn init(world: usize, id: sys::ncclUniqueId, rank: usize) -> Result<Self> {
        let mut comm = std::ptr::null_mut();
        // SAFETY: comm is written by NCCL on success.
        unsafe { result::comm_init_rank(&mut comm, int(world, "world")?, id, int(rank, "rank")?) }
            .map_err(|e| nccl_error(&format!("joining as rank {rank} of {world}"), None, e))?;
        Ok(Handle(comm))
    }

    /// Sums `count` elements at `ptr` over the ranks, in place.
    pub(super) fn all_reduce_sum(
        &self,
        ptr: u64,
        count: usize,
        dtype: sys::ncclDataType_t,
        stream: sys::cudaStream_t,
    ) -> Result<()> {
        // SAFETY: ptr covers `count` elements of `dtype` on this
        // communicator's device; the caller keeps it alive until the stream
        // is past this call.
        let r = unsafe {
            result::all_reduce(
                ptr as *const c_void,
                ptr as *mut c_void,
                count,
                dtype,
                sys::ncclRedOp_t::ncclSum,
                self.0,
                stream,
            )
        };
        self.check(r, || format!("all-reduce of {count} {dtype:?}"))
    }

    /// Every rank's `count` elements at `send`, in rank order at `recv`.
    pub(super) fn all_gather(
        &self,
        send: u64,
        recv: u64,
        count: usize,
        dtype: sys::ncclDataType_t,
        stream: sys::cudaStream_t,
    ) -> Result<()> {
        // SAFETY: send covers `count` elements, recv world·count; both stay
        // alive until the stream is past this call.
        let r = unsafe { result::all_gather(send as *const c_void, recv as *mut c_void, count, dtype, self.0, stream) };
        self.check(r, || format!("all-gather of {count} {dtype:?}"))
    }

    /// The sum over ranks of world·`count` elements at `send`, of which this
    /// rank keeps its block of `count` at `recv`.
    pub(super) fn reduce_scatter_sum(
        &self,
        send: u64,
        recv: u64,
        count: usize,
        dtype: sys::ncclDataType_t,
        stream: sys::cudaStream_t,
    ) -> Result<()> {
        // SAFETY: as for all_gather, with the sizes swapped.
        let r = unsafe {
            result::reduce_scatter(
                send as *const c_void,
                recv as *mut c_void,
                count,
                dtype,
                sys::ncclRedOp_t::ncclSum,
                self.0,
                stream,
            )
        };
        self.check(r, || format!("reduce-scatter of {count} {dtype:?}"))
    }

    /// Sends `count` elements at `send` to rank `to` and receives as many
    /// from rank `from` at `recv` (`peers` = (to, from)), as one group: NCCL
    /// runs grouped point-to-point calls together, so every rank's send
    /// meets its neighbour's receive however the ring is ordered.
    pub(super) fn send_receive(
        &self,
        send: u64,
        recv: u64,
        count: usize,
        dtype: sys::ncclDataType_t,
        (to, from): (usize, usize),
        stream: sys::cudaStream_t,
    ) -> Result<()> {
        let (to, from) = (int(to, "rank")?, int(from, "rank")?);
        let what = || format!("ring exchange of {count} {dtype:?} (to rank {to}, from rank {from})");
        self.check(result::group_start(), what)?;
        // SAFETY: send and recv each cover `count` elements of `dtype` on
        // this communicator's device and stay alive until the stream is past
        // this call.
        let queued = self
            .check(unsafe { result::send(send as *const c_void, count, dtype, to, self.0, stream) }, what)
            .and_then(|()| {
                self.check(unsafe { result::recv(recv as *mut c_void, count, dtype, from, self.0, stream) }, what)
            });
        // The group is closed whatever happened in it: NCCL's group depth is
        // per thread and would hold back this thread's later calls.
        let ended = self.check(result::group_end(), what);
        queued.and(ended)
    }

    /// Frees the communicator once its queued work is done.
    pub(super) fn destroy(self) -> Result<()> {
        let comm = self.0;
        std::mem::forget(self);
        // SAFETY: a live communicator, destroyed once (self is consumed).
        unsafe { result::comm_destroy(comm) }
            .map(|_| ())
            .map_err(|e| nccl_error("destroying the communicator", None, e))
    }

    /// Ends the communicator at once, its queued work abandoned: the way out
    /// when a peer may never answer.
    pub(super) fn abort(self) {
        let comm = self.0;
        std::mem::forget(self);
        // SAFETY: as for destroy. A failure leaves nothing to do: the job ends next.
        let _ = unsafe { result::comm_abort(comm) };
    }

    fn check(&self, r: std::result::Result<NcclStatus, NcclError>, what: impl FnOnce() -> String) -> Result<()> {
        r.map(|_| ()).map_err(|e| nccl_error(&what(), Some(self.0), e))
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: a live communicator; destroy and abort forget self instead.
        let _ = unsafe { result::comm_destroy(self.0) };
    }
}

/// "NCCL <what>: <NCCL's words> (<code>)", with the communicator's last
/// error when there is one: NCCL's codes alone ("unhandled system error")
/// rarely say what failed.
fn nccl_error(what: &str, comm: Option<sys::ncclComm_t>, e: NcclError) -> Error {
    // SAFETY: NCCL returns static NUL-terminated strings (or null).
    let text = |p: *const std::ffi::c_char| {
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_string())
    };
    let words = text(unsafe { sys::ncclGetErrorString(e.0) }).unwrap_or_default();
    let last = comm.and_then(|c| text(unsafe { sys::ncclGetLastError(c) })).filter(|s| !s.is_empty());
    let last = last.map(|s| format!("; {s}")).unwrap_or_default();
    Error::Device(format!("NCCL {what}: {words} ({:?}){last}", e.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_float_dtypes_and_refuses_integers() {
        assert_eq!(data_type("t", DType::F32).unwrap(), sys::ncclDataType_t::ncclFloat32);
        assert_eq!(data_type("t", DType::BF16).unwrap(), sys::ncclDataType_t::ncclBfloat16);
        assert_eq!(data_type("t", DType::F64).unwrap(), sys::ncclDataType_t::ncclFloat64);
        let e = data_type("all_gather", DType::U32).unwrap_err().to_string();
        assert!(e.contains("all_gather") && e.contains("u32"), "{e}");
    }

    #[test]
    fn nccl_codes_of_the_dtypes_are_nccls() {
        // The values of nccl.h's ncclDataType_t, which libnccl reads.
        assert_eq!(sys::ncclDataType_t::ncclFloat32 as u32, 7);
        assert_eq!(sys::ncclDataType_t::ncclFloat64 as u32, 8);
        assert_eq!(sys::ncclDataType_t::ncclBfloat16 as u32, 9);
    }

    #[test]
    fn unique_id_bytes_round_trip_and_a_wrong_length_is_refused() {
        let bytes: Vec<u8> = (0..UNIQUE_ID_BYTES).map(|i| (i * 7 % 256) as u8).collect();
        let id = unique_id(&bytes).unwrap();
        assert_eq!(id.internal.iter().map(|&c| c as u8).collect::<Vec<_>>(), bytes);
        let e = unique_id(&bytes[..5]).unwrap_err().to_string();
        assert!(e.contains("5 bytes") && e.contains("128"), "{e}");
    }
}
