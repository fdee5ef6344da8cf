//! ImageFolder classification sets (a folder per class, as torchvision's
//! `ImageFolder`): classes are the sub-folders in sorted order, samples the
//! `.jpg`, `.jpeg` and `.png` files below each (recursively, sorted). Class
//! names come from the folder names (`_` read as a space) or from a file with
//! one name per line in the folders' sorted order.

use crate::decode::decode_view;
use crate::files::{io_problem, read_file};
use crate::{
    DEFAULT_TEMPLATES, DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View, ZeroShotSet,
    fill_template,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

pub struct ImageFolder {
    source: String,
    classnames: Vec<String>,
    samples: Vec<(PathBuf, usize)>,
    report: DataReport,
}

impl ImageFolder {
    pub fn open(root: impl AsRef<Path>, classnames_file: Option<&Path>) -> Result<Self> {
        let root = root.as_ref();
        let source = root.display().to_string();
        let mut folders: Vec<(String, PathBuf)> = std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry.path()))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        folders.sort();
        if folders.is_empty() {
            return Err(Error::format(root, "no class folders"));
        }
        let classnames = match classnames_file {
            Some(file) => read_classnames(file, folders.len())?,
            None => folders.iter().map(|(name, _)| name.replace('_', " ")).collect(),
        };
        let mut report = DataReport::new(&source);
        let mut samples = Vec::new();
        for (label, (_, folder)) in folders.iter().enumerate() {
            let mut files = Vec::new();
            collect_images(folder, &mut files, &mut report);
            files.sort();
            samples.extend(files.into_iter().map(|f| (f, label)));
        }
        if samples.is_empty() {
            return Err(Error::NoUsableSample { dataset: source, report: Box::new(report) });
        }
        Ok(ImageFolder { source, classnames, samples, report })
    }

    pub fn classnames(&self) -> &[String] {
        &self.classnames
    }

    pub fn label(&self, index: usize) -> usize {
        self.samples[index].1
    }

    /// The folder as a zero-shot set with the given templates.
    pub fn into_zero_shot(self, templates: Vec<String>) -> ZeroShotSet {
        ZeroShotSet {
            name: self.source.clone(),
            classnames: self.classnames.clone(),
            templates,
            labels: self.samples.iter().map(|(_, label)| *label).collect(),
            images: Arc::new(self),
        }
    }
}

impl Dataset for ImageFolder {
    fn source(&self) -> &str {
        &self.source
    }

    fn len(&self) -> usize {
        self.samples.len()
    }

    /// The caption is the default prompt for the sample's class.
    fn load(&self, index: usize, view: &View) -> std::result::Result<Sample, Problem> {
        let (path, label) = &self.samples[index];
        let bytes = read_file(path)?;
        let image = decode_view(&bytes, view)
            .map_err(|reason| Problem::new(ProblemKind::BadImage, path.display().to_string(), reason))?;
        Ok(Sample { image, caption: fill_template(DEFAULT_TEMPLATES[0], &self.classnames[*label]) })
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

fn read_classnames(file: &Path, folders: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if names.len() != folders {
        return Err(Error::format(file, format!("{} class names for {folders} class folders", names.len())));
    }
    Ok(names)
}

fn collect_images(folder: &Path, files: &mut Vec<PathBuf>, report: &mut DataReport) {
    let entries = match std::fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) => return report.record(io_problem(folder.display().to_string(), &e)),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                report.record(io_problem(folder.display().to_string(), &e));
                continue;
            }
        };
        if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if path.is_dir() {
            collect_images(&path, files, report);
        } else if path
            .extension()
            .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_string_lossy().to_ascii_lowercase().as_str()))
        {
            files.push(path);
        }
    }
}
