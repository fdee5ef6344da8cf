//! ImageFolder classification sets (a folder per class, as torchvision's
//! `ImageFolder`): classes are the sub-folders in sorted order, samples the
//! `.jpg`, `.jpeg` and `.png` files below each (recursively, sorted). Class
//! names come from the folder names (`_` read as a space) or from a file with
//! one name per line in the folders' sorted order.
//!
//! Like torchvision, the walk follows symbolic links; a link back to a folder
//! it is in is reported and not followed, and the walk goes at most
//! [`MAX_FOLDER_DEPTH`] levels below a class folder.

use crate::decode::decode_view;
use crate::files::io_problem;
use crate::limits::MAX_FOLDER_DEPTH;
use crate::{
    DEFAULT_TEMPLATES, DataReport, Dataset, Error, Problem, ProblemKind, Result, Sample, View, ZeroShotSet,
    fill_template, read_image_file, read_text_file,
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
        let root_real = std::fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        for (label, (_, folder)) in folders.iter().enumerate() {
            let mut files = Vec::new();
            let mut walk = Walk { files: &mut files, report: &mut report, above: vec![root_real.clone()] };
            walk.collect(folder, 0);
            files.sort();
            samples.extend(files.into_iter().map(|f| (f, label)));
        }
        if samples.is_empty() {
            let found = format!("no .jpg, .jpeg or .png files in its {} class folder(s)", folders.len());
            return Err(Error::no_usable_sample(source, found, report));
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
        let bytes = read_image_file(path)?;
        let image = decode_view(&bytes, view)
            .map_err(|reason| Problem::new(ProblemKind::BadImage, path.display().to_string(), reason))?;
        Ok(Sample { image, caption: fill_template(DEFAULT_TEMPLATES[0], &self.classnames[*label]) })
    }

    fn open_report(&self) -> &DataReport {
        &self.report
    }
}

fn read_classnames(file: &Path, folders: usize) -> Result<Vec<String>> {
    let text = read_text_file(file)?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect();
    if names.len() != folders {
        return Err(Error::format(file, format!("{} class names for {folders} class folders", names.len())));
    }
    Ok(names)
}

/// The image files below one class folder.
struct Walk<'a> {
    files: &'a mut Vec<PathBuf>,
    report: &'a mut DataReport,
    /// The real paths of the root and the folders being walked, outermost first.
    above: Vec<PathBuf>,
}

impl Walk<'_> {
    /// Adds the images in `folder` and below; `depth` is its level below the class folder.
    fn collect(&mut self, folder: &Path, depth: usize) {
        let location = folder.display().to_string();
        if depth > MAX_FOLDER_DEPTH {
            let reason =
                format!("more than the MAX_FOLDER_DEPTH ceiling ({MAX_FOLDER_DEPTH}) folders deep: not walked");
            return self.report.record(Problem::new(ProblemKind::UnreadableFile, location, reason));
        }
        let real = match std::fs::canonicalize(folder) {
            Ok(real) => real,
            Err(e) => return self.report.record(io_problem(location, &e)),
        };
        if let Some(outer) = self.above.iter().find(|outer| **outer == real) {
            let reason = format!("a symbolic link loop back to {}, which holds it: not followed", outer.display());
            return self.report.record(Problem::new(ProblemKind::UnreadableFile, location, reason));
        }
        let entries = match std::fs::read_dir(folder) {
            Ok(entries) => entries,
            Err(e) => return self.report.record(io_problem(location, &e)),
        };
        self.above.push(real);
        for entry in entries {
            let path = match entry {
                Ok(entry) => entry.path(),
                Err(e) => {
                    self.report.record(io_problem(location.clone(), &e));
                    continue;
                }
            };
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                continue;
            }
            if path.is_dir() {
                self.collect(&path, depth + 1);
            } else if path
                .extension()
                .is_some_and(|ext| IMAGE_EXTENSIONS.contains(&ext.to_string_lossy().to_ascii_lowercase().as_str()))
            {
                self.files.push(path);
            }
        }
        self.above.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_loop_is_reported_and_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("cat/a.jpg"), b"x");
        write(&dir.path().join("cat/inner/b.jpg"), b"x");
        std::os::unix::fs::symlink(dir.path().join("cat"), dir.path().join("cat/inner/up")).unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("cat/root")).unwrap();
        let folder = ImageFolder::open(dir.path(), None).unwrap();
        assert_eq!(folder.len(), 2, "each image once");
        let report = folder.open_report();
        assert_eq!(report.count(ProblemKind::UnreadableFile), 2, "{report}");
        let text = report.to_string();
        assert!(text.contains("inner/up: a symbolic link loop back to") && text.contains("cat/root"), "{text}");
    }

    #[test]
    fn folders_deeper_than_the_ceiling_are_reported_and_not_walked() {
        let dir = tempfile::tempdir().unwrap();
        let mut deep = dir.path().join("cat");
        write(&deep.join("top.png"), b"x");
        for level in 1..=MAX_FOLDER_DEPTH + 1 {
            deep = deep.join(format!("{level}"));
            write(&deep.join("img.png"), b"x");
        }
        let folder = ImageFolder::open(dir.path(), None).unwrap();
        assert_eq!(folder.len(), MAX_FOLDER_DEPTH + 1, "the class folder's image and one per level walked");
        let report = folder.open_report();
        assert_eq!(report.count(ProblemKind::UnreadableFile), 1, "{report}");
        let problem = &report.examples()[0];
        assert!(problem.location.ends_with(&format!("/{}", MAX_FOLDER_DEPTH + 1)), "{problem}");
        assert!(problem.reason.contains("MAX_FOLDER_DEPTH ceiling (32)"), "{problem}");
    }

    #[test]
    fn an_empty_folder_says_it_found_no_images() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a/readme.txt"), b"x");
        std::fs::create_dir(dir.path().join("b")).unwrap();
        let err = ImageFolder::open(dir.path(), None).err().unwrap().to_string();
        assert!(err.ends_with(": no .jpg, .jpeg or .png files in its 2 class folder(s)"), "{err}");
    }

    #[test]
    fn a_classnames_file_must_be_a_regular_utf8_file() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("data/a/1.jpg"), b"x");
        let names = dir.path().join("names.txt");
        write(&names, b"\xff\n");
        let err = ImageFolder::open(dir.path().join("data"), Some(&names)).err().unwrap().to_string();
        assert!(err.contains("names.txt: not UTF-8: line 1"), "{err}");
        let err = ImageFolder::open(dir.path().join("data"), Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("not a regular file (a folder)"), "{err}");
    }
}
