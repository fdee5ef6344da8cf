use crate::{DataReport, Problem, Rgb8Image, View, fill_template};
use std::sync::Arc;

/// One image–caption pair, the image already cut and resized to its view.
#[derive(Clone, Debug)]
pub struct Sample {
    pub image: Rgb8Image,
    pub caption: String,
}

/// A source of image–caption pairs with random access by index. Loading a
/// sample either gives it at the view's size or says why it must be skipped;
/// problems found when the source was opened (bad rows, broken shards) are in
/// [`Dataset::open_report`].
pub trait Dataset: Send + Sync {
    /// Names the source in reports and errors: a file, folder or shard pattern.
    fn source(&self) -> &str;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn load(&self, index: usize, view: &View) -> Result<Sample, Problem>;
    fn open_report(&self) -> &DataReport;
}

/// A zero-shot classification set: class names, prompt templates, and images
/// whose sample `i` has class `labels[i]`.
#[derive(Clone)]
pub struct ZeroShotSet {
    pub name: String,
    pub classnames: Vec<String>,
    pub templates: Vec<String>,
    pub images: Arc<dyn Dataset>,
    pub labels: Vec<usize>,
}

impl ZeroShotSet {
    pub fn num_classes(&self) -> usize {
        self.classnames.len()
    }

    /// Every template filled with class `class`'s name.
    pub fn prompts(&self, class: usize) -> Vec<String> {
        self.templates.iter().map(|t| fill_template(t, &self.classnames[class])).collect()
    }
}
