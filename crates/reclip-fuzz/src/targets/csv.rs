//! CSV/TSV image–caption lists: a list either fails to open or opens with at
//! least one row, and every record the CSV parser reads is either a row or a
//! reported problem (nothing is silently lost). Rows load as the view's
//! square with a non-blank caption, or are refused.

use super::Verdict;
use crate::samples::{rgb_jpeg, rgb_png};
use crate::scratch;
use crate::views::{check_image, view_for};
use reclip_data::{CsvDataset, CsvOptions, Dataset};
use std::cell::Cell;

/// Rows loaded per input.
const MAX_LOADS: usize = 6;

thread_local! {
    static IMAGES_WRITTEN: Cell<bool> = const { Cell::new(false) };
}

/// The files the seed lists name, beside the list: two images, a corrupt
/// one and an empty one (`missing.jpg` is left out on purpose).
fn write_images() -> Result<(), String> {
    if IMAGES_WRITTEN.get() {
        return Ok(());
    }
    scratch::write("img0.jpg", &rgb_jpeg(30, 20, 85))?;
    scratch::write("img1.png", &rgb_png(12, 12))?;
    scratch::write("bad.jpg", b"\xff\xd8\xff\xe0 not really a JPEG")?;
    scratch::write("empty.png", b"")?;
    IMAGES_WRITTEN.set(true);
    Ok(())
}

pub fn seeds() -> Vec<Vec<u8>> {
    [
        "filepath\ttitle\nimg0.jpg\ta photo of a cat\nimg1.png\ta red square\nmissing.jpg\tnot there\n\
         bad.jpg\tcorrupt\nempty.png\tempty\n\tno path\nimg0.jpg\t   \n",
        "id,filepath,title,url\n1,img0.jpg,\"a cat, sitting\",http://example.com/1\n\
         2,img1.png,\"a \"\"quoted\"\" dog\",\n3,img0.jpg,\"two\nlines\",x\n",
        "title\tfilepath\r\na dog\timg1.png\r\na cat\timg0.jpg\textra field\r\n\r\nshort\r\n",
        "filepath\ttitle\n./img0.jpg\tcafé ☕ 日本語\nsub/../img1.png\ta path through a folder\n",
    ]
    .map(|s| s.as_bytes().to_vec())
    .to_vec()
}

/// Comma-separated when the header row has a comma and no tab; tab-separated
/// (open_clip's default) otherwise.
fn separator(input: &[u8]) -> u8 {
    let header = input.split(|&b| b == b'\n').next().unwrap_or(&[]);
    if header.contains(&b',') && !header.contains(&b'\t') { b',' } else { b'\t' }
}

pub fn run(input: &[u8]) -> Result<Verdict, String> {
    write_images()?;
    let path = scratch::write("list.csv", input)?;
    let options = CsvOptions { separator: separator(input), ..CsvOptions::default() };
    let dataset = match CsvDataset::open(&path, &options) {
        Ok(d) => d,
        Err(e) => return Ok(Verdict::Rejected(e.to_string())),
    };
    if dataset.is_empty() {
        return Err("the list opened with no row".into());
    }
    let records =
        csv::ReaderBuilder::new().delimiter(options.separator).has_headers(true).from_reader(input).records().count();
    let problems = dataset.open_report().total();
    if dataset.len() + problems != records {
        return Err(format!(
            "{records} records, but {} rows and {problems} problems ({})",
            dataset.len(),
            dataset.open_report().summary()
        ));
    }
    for index in 0..dataset.len().min(MAX_LOADS) {
        let view = view_for(input, index as u64);
        if let Ok(sample) = dataset.load(index, &view) {
            check_image(&sample.image, &view).map_err(|e| format!("row {index}: {e}"))?;
            if sample.caption.trim().is_empty() {
                return Err(format!("row {index} loaded with the blank caption {:?}", sample.caption));
            }
        }
    }
    Ok(Verdict::Accepted)
}
