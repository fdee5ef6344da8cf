//! A training step on a GPU device queues its work and returns: it reads
//! nothing back from the device and uploads only its batch — the images, the
//! token ids and the end-of-text positions, each with the grouping its
//! gradient needs. Every host↔device copy waits for the GPU, so one more per
//! step would stall the pipeline; the emulator counts them.

mod common;

use common::emulated::{SMALL, batch, batch_bytes, delta};
use reclip::core::{DType, Device, GpuDevice};
use reclip::model::{Clip, ModelConfig};
use reclip::train::{AdamW, AdamWConfig, train_step};
use reclip_emu::{Emulator, Transfers};
use std::sync::Arc;

#[test]
fn a_training_step_reads_nothing_back_and_uploads_only_its_batch() {
    let emulator = Arc::new(Emulator::new(11));
    let device = Device::Gpu(GpuDevice::new(emulator.clone()));
    let config = ModelConfig::from_json_str(SMALL).unwrap();
    let vocab = config.text_cfg.vocab_size;
    let mut clip = Clip::new(config, 5, &device).unwrap();
    clip.set_image_size(16).unwrap();
    let mut optimizer = AdamW::new(&clip.params(), AdamWConfig::default()).unwrap();
    for dtype in [DType::F32, DType::BF16] {
        let step = |clip: &Clip, optimizer: &mut AdamW, seed: u64| {
            let (images, ids) = batch(clip.image_size(), seed);
            let before = emulator.transfers();
            let (loss, report) = train_step(clip, optimizer, &images, &ids, dtype, 1e-3, None).unwrap();
            (delta(emulator.transfers(), before), loss, report)
        };
        // The first step of a model builds the optimizer's table of parameters.
        let (first, _, _) = step(&clip, &mut optimizer, 1);
        assert_eq!(first.reads, 0, "{dtype} first step: {first:?}");

        let (t, loss, report) = step(&clip, &mut optimizer, 2);
        let expected = Transfers { writes: 3, write_bytes: batch_bytes(16, vocab), reads: 0, read_bytes: 0 };
        assert_eq!(t, expected, "{dtype}: a steady-state step's transfers");

        // Reading the loss and the gradient norm, when a step is logged, is
        // then one read each.
        let before = emulator.transfers();
        let (loss, norm) = (loss.tensor().to_scalar().unwrap(), report.grad_norm().unwrap().unwrap());
        assert!(loss.is_finite() && norm.is_finite() && norm > 0.0, "loss {loss}, gradient norm {norm}");
        assert_eq!(delta(emulator.transfers(), before).reads, 2);
    }

    // A resolution switch resizes the positional embedding: the step after
    // it uploads the optimizer's table once more, the next one does not.
    assert!(clip.set_image_size(24).unwrap());
    optimizer.reset_moments(&clip.weights().visual.positional_embedding).unwrap();
    let (images, ids) = batch(24, 3);
    let before = emulator.transfers();
    train_step(&clip, &mut optimizer, &images, &ids, DType::F32, 1e-3, None).unwrap();
    let switch = delta(emulator.transfers(), before);
    assert_eq!((switch.writes, switch.reads), (4, 0), "{switch:?}");
    let (images, ids) = batch(24, 4);
    let before = emulator.transfers();
    train_step(&clip, &mut optimizer, &images, &ids, DType::F32, 1e-3, None).unwrap();
    let after = delta(emulator.transfers(), before);
    assert_eq!(after, Transfers { writes: 3, write_bytes: batch_bytes(24, vocab), reads: 0, read_bytes: 0 });
}
