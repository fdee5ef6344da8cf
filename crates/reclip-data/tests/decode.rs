mod common;

use common::{jpeg_bytes, mean_abs_diff, photo, png_bytes, solid};
use reclip_data::{Augment, View, decode_view, jpeg_scale_denominator};

fn view(size: usize, reduced: bool) -> View {
    View { reduced_jpeg_scale: reduced, ..View::eval(size) }
}

#[test]
fn reduced_scale_decoding_stays_close_to_the_full_path() {
    let jpeg = jpeg_bytes(&photo(480, 360, 7), 90);
    for (size, denominator) in [(40, 8), (64, 4), (120, 2)] {
        let crop = view(size, true).crop(480.0, 360.0);
        assert_eq!(jpeg_scale_denominator(&crop, size), denominator);
        let reduced = decode_view(&jpeg, &view(size, true)).unwrap();
        let full = decode_view(&jpeg, &view(size, false)).unwrap();
        assert_eq!((reduced.width, reduced.height), (size, size));
        let error = mean_abs_diff(&reduced.pixels, &full.pixels);
        assert!(error > 0.0, "at {size} px the reduced path was not taken");
        // Under 1% of the range; measured: 1.8 at 1/8 (DC only), 0.55 at 1/4, 0.38 at 1/2.
        assert!(error < 2.55, "at {size} px (1/{denominator}) mean error {error:.2} of 255");
    }
}

#[test]
fn grayscale_jpeg_and_sixteen_bit_png_become_rgb() {
    let grey = image::GrayImage::from_fn(32, 32, |x, _| image::Luma([(x * 8) as u8]));
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&grey).unwrap();
    let out = decode_view(&bytes, &view(16, true)).unwrap();
    assert!(out.pixels.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    assert!(out.pixel(15, 8)[0] > out.pixel(0, 8)[0] + 150, "the ramp survives");

    let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(6, 6, image::Rgb([65535u16, 32896, 0]));
    let out = decode_view(&png_bytes(&image::DynamicImage::ImageRgb16(deep)), &view(3, true)).unwrap();
    assert_eq!(out.pixel(1, 1), [255, 128, 0]);
}

#[test]
fn the_eval_view_is_the_centre_square() {
    // Three vertical bands; the centre square of a 3:1 image is the middle one.
    let bands = image::RgbImage::from_fn(90, 30, |x, _| {
        image::Rgb(if x < 30 {
            [255, 0, 0]
        } else if x < 60 {
            [0, 255, 0]
        } else {
            [0, 0, 255]
        })
    });
    let out = decode_view(&png_bytes(&bands.into()), &view(10, true)).unwrap();
    for y in 0..10 {
        for x in 1..9 {
            assert_eq!(out.pixel(x, y), [0, 255, 0], "({x}, {y})");
        }
    }
}

#[test]
fn training_views_crop_differently_per_seed_and_reproducibly() {
    let jpeg = jpeg_bytes(&photo(200, 150, 3), 90);
    let train = |seed| View { size: 32, augment: Augment::RandomResizedCrop, seed, reduced_jpeg_scale: true };
    let a = decode_view(&jpeg, &train(1)).unwrap();
    assert_eq!(a, decode_view(&jpeg, &train(1)).unwrap());
    let differs = (2..10).filter(|&s| decode_view(&jpeg, &train(s)).unwrap() != a).count();
    assert!(differs >= 4, "only {differs} of 8 other seeds gave another crop");
}

#[test]
fn truncated_and_corrupt_images_are_errors() {
    let jpeg = jpeg_bytes(&photo(64, 48, 1), 90);
    let png = png_bytes(&photo(64, 48, 1).into());
    for (name, bytes) in [
        ("jpeg cut in half", &jpeg[..jpeg.len() / 2]),
        ("jpeg headers only", &jpeg[..200]),
        ("png cut in half", &png[..png.len() / 2]),
        (
            "png with a bad chunk",
            &{
                let mut p = png.clone();
                let i = p.len() / 2;
                p[i] ^= 0xff;
                p
            }[..],
        ),
    ] {
        for reduced in [false, true] {
            assert!(decode_view(bytes, &view(16, reduced)).is_err(), "{name} decoded (reduced: {reduced})");
        }
    }
    assert!(decode_view(&png_bytes(&solid(3, 3, [0, 0, 0]).into()), &view(16, true)).is_ok());
}
