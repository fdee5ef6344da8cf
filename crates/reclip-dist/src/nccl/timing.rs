//! The device time spent in collectives, measured by CUDA events around each
//! one on NCCL's stream: from the moment NCCL's stream may start it (the
//! compute stream has reached it and earlier collectives are done) to its
//! end. Collectives on one stream do not overlap, so the sum counts no time
//! twice.

use super::streams::driver;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream};
use reclip_core::Result;
use std::collections::VecDeque;
use std::sync::Mutex;

#[derive(Default)]
pub(super) struct DeviceTime(Mutex<Spans>);

#[derive(Default)]
struct Spans {
    /// Collectives whose end may not have been reached yet, oldest first.
    open: VecDeque<(CudaEvent, CudaEvent)>,
    /// Milliseconds of the collectives already read off their events.
    closed_ms: f64,
}

/// A collective's start on NCCL's stream.
pub(super) struct Start(CudaEvent);

impl DeviceTime {
    pub(super) fn start(&self, stream: &CudaStream) -> Result<Start> {
        Ok(Start(record(stream)?))
    }

    /// Closes the span opened by `start` at the end of what is queued on
    /// `stream`, and reads off the spans that are over, so that the events
    /// held stay few however long a run goes between reads.
    pub(super) fn end(&self, start: Start, stream: &CudaStream) -> Result<()> {
        let end = record(stream)?;
        let mut spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        spans.open.push_back((start.0, end));
        while let Some((_, end)) = spans.open.front() {
            if !end.try_is_complete().map_err(|e| driver("querying an event", e))? {
                break;
            }
            let (start, end) = spans.open.pop_front().expect("front exists");
            spans.closed_ms += elapsed_ms(&start, &end)?;
        }
        Ok(())
    }

    /// Seconds spent in the collectives queued since the last call. Blocks
    /// until they are done: call it where the host waits for the device
    /// anyway (a logged step).
    pub(super) fn take_seconds(&self) -> Result<f64> {
        let mut spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((start, end)) = spans.open.pop_front() {
            spans.closed_ms += elapsed_ms(&start, &end)?;
        }
        Ok(std::mem::take(&mut spans.closed_ms) * 1e-3)
    }
}

fn record(stream: &CudaStream) -> Result<CudaEvent> {
    stream.record_event(Some(CUevent_flags::CU_EVENT_DEFAULT)).map_err(|e| driver("recording a timing event", e))
}

fn elapsed_ms(start: &CudaEvent, end: &CudaEvent) -> Result<f64> {
    start.elapsed_ms(end).map(f64::from).map_err(|e| driver("reading a timing event", e))
}
